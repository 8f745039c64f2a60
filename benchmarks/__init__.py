"""Side-by-side performance runs of carlang and, where installed, car-runtime (not timed tests).

Run `python -m benchmarks --help`. Each benchmark prints medians and, where car-runtime is
installed, the ratio on the same inputs in the same process.
"""
