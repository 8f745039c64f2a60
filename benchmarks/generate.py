"""Generate realistic carlang programs of a given size, for the compile benchmark and the
property tests' large cases. Deterministic for a given size and seed."""

from __future__ import annotations

import random

__all__ = ["generate_program", "generate_policies"]

_TOOLS = [
    ("fetch", "url: string, timeout_ms: int = 5000", "-> object { idempotent  cache 60s }"),
    (
        "deploy",
        'env: "staging" | "prod", version: string',
        "{ reversibility compensable  rate 5 per 1m }",
    ),
    ("rollback", "env: string", "{ reversibility reversible }"),
    ("notify", "channel: string, text: string, urgent?: bool", "{ rate 30 per 1m }"),
    (
        "query",
        "sql: string, limit: int = 100, tags: list[string] = []",
        "-> list[map[any]] { idempotent }",
    ),
    ("store", "key: string, value: any", ""),
]


def _action(rng: random.Random, p: int, i: int) -> list[str]:
    name = f"a{i}"
    after = f" after a{i - 1}" if i and rng.random() < 0.6 else ""
    kind = rng.random()
    if kind < 0.45:
        call = (
            f'fetch(url: "https://svc{p}.example/item/{i}", timeout_ms: {rng.randint(100, 9000)})'
        )
        body = f"{{ effects {{ item.p{p}.a{i} = true }}  retry 2  timeout 5s }}"
        return [f"  {name} = {call}{after} {body}"]
    if kind < 0.6:
        return [
            f'  {name} = query(sql: "select * from t{i} where p = {p}", '
            f"limit: {rng.randint(1, 500)}){after} {{",
            "    requires ready == true",
            f"    effects {{ rows.p{p}.a{i} = {rng.randint(0, 99)} }}",
            "    on_failure skip",
            "  }",
        ]
    if kind < 0.72:
        text = f'"step {i} of plan {p} done"'
        return [f'  {name} = notify(channel: "#ops-{p}", text: {text}, urgent: false){after}']
    if kind < 0.84:
        return [f'  {name} = set status.p{p}.s{i} = "step-{i}"{after}']
    if kind < 0.92:
        return [f"  {name} = assert ready == true{after}"]
    return [
        f'  {name} = deploy(env: "staging", version: "1.{p}.{i}"){after} {{',
        '    compensate rollback(env: "staging")',
        f"    effects {{ deployed.p{p}.a{i} = true }}",
        "  }",
    ]


def generate_program(lines: int, seed: int = 7) -> str:
    """A program of about `lines` lines: tools, state, capabilities, budgets, policies, many
    proposals of 25 actions, plans and tests, in the proportions of a large real program."""
    rng = random.Random(seed)
    out = ["# generated carlang program", ""]
    for name, params, tail in _TOOLS:
        out.append(f"tool {name}({params}) {tail}".rstrip())
    out += [
        "",
        "state {",
        "  ready: bool = true",
        "  item.*: any",
        "  rows.*: int",
        "  status.*: string",
        "  deployed.*: bool",
        "}",
        "",
    ]
    out += [
        "capability worker {",
        "  tools allow fetch, query, notify, store, deploy, rollback   deny shell",
        "  state allow item.*, rows.*, status.*, deployed.*, ready",
        "}",
        "budget standard { max_actions 40  max_tool_calls 30  max_duration 10m }",
        "",
        'policy https_only: deny fetch when !params.url.startsWith("https://")',
        '  message "only https fetches"',
        'policy prod_approval: require_approval deploy when params.env == "prod"',
        'policy small_queries: deny query when params.limit > 1000 && !("bulk" in params.tags)',
        'deny_keyword ["rm -rf /", "DROP TABLE"]',
        "rate_limit_tool notify 60 per 1m",
        "",
    ]
    p = 0
    while len(out) < lines - 12:
        out.append(f'proposal plan{p} from "model-{p % 3}" under worker, standard {{')
        for i in range(25):
            out += _action(rng, p, i)
        out += ["}", ""]
        p += 1
    out += [
        "plan choose {",
        "  candidates " + ", ".join(f"plan{i}" for i in range(min(p, 4))),
        "  cost_weight 0.3",
        "}",
        "",
    ]
    out += [
        'test "https fetch passes" {',
        '  action fetch(url: "https://a.example")',
        "  expect allow",
        "}",
    ]
    return "\n".join(out) + "\n"


#: A policy's condition per tool of `_TOOLS`, over the call's parameters and the state: `{i}`
#: (the policy's number) makes each condition its own, as a real program's are; `{k}` is a
#: small number.
_CONDITIONS = {
    "fetch": 'params.url.startsWith("http://h{i}.example/") && state.level > {k}',
    "deploy": 'params.env == "prod" && params.version == "1.{i}.0" && !state.ready',
    "rollback": 'params.env == "prod-{i}" && state.level <= {k}',
    "notify": 'params.channel == "#c{i}" && params.text.contains("rollout {i}") || !state.ready',
    "query": 'params.limit > {i} + 1000 && !("t{i}" in params.tags)',
    "store": 'params.key.startsWith("k{i}.") && state.level >= {k}',
}


def generate_policies(count: int, same_tool: bool = False, seed: int = 7) -> str:
    """A program of `count` CEL policies (deny, one in four require_approval; a message on
    every third) over the tools of `generate_program`, in turn or, with `same_tool`, all on
    `fetch`; and a small proposal that none of them stops, so that `check` reports nothing and
    its time is the policies'."""
    rng = random.Random(seed)
    out = ["# generated carlang policies", ""]
    for name, params, tail in _TOOLS:
        out.append(f"tool {name}({params}) {tail}".rstrip())
    out += ["", "state {", "  ready: bool = true", "  level: int = 3", "}", ""]
    tools = ["fetch"] if same_tool else list(_CONDITIONS)
    for i in range(count):
        tool = tools[i % len(tools)]
        effect = "require_approval" if rng.random() < 0.25 else "deny"
        condition = _CONDITIONS[tool].format(i=i, k=i % 5)
        out.append(f"policy p{i}: {effect} {tool} when {condition}")
        if i % 3 == 0:
            out.append(f'  message "{tool} rule {i}"')
    out += [
        "",
        "capability worker {",
        "  tools allow fetch, deploy, rollback, notify, query, store",
        "  state allow ready, level",
        "}",
        'proposal sync from "model-0" under worker {',
        '  a = fetch(url: "https://h0.example/item")',
        '  b = query(sql: "select 1", limit: 10) after a',
        '  c = notify(channel: "#ops", text: "synced", urgent: false) after b',
        "}",
    ]
    return "\n".join(out) + "\n"
