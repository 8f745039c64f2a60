"""Where models meet the runtime: their tool calls in, observations out, and the loop.

turns.py    a model's assistant turn (OpenAI chat, OpenAI Responses, Anthropic, LangChain)
            -> the tool calls in it -> a proposal (`proposal_from_turn`)
messages.py a run's results -> the tool-result messages of each format (`results_to_messages`)
specs.py    the tools a model is offered, in each format (`tool_specs`), and the name mapping
loop.py     `AgentLoop`: propose -> validate -> execute -> observe, as CAR's assistant loop
models.py   generators: a scripted one and an OpenAI-compatible chat-completions client
"""

from __future__ import annotations

from .loop import AgentEvent, AgentLoop, AgentOutcome, ModelGenerator
from .messages import results_to_messages, tool_result_text
from .models import GeneratorError, OpenAIChatGenerator, ScriptedGenerator
from .specs import model_tool_name, tool_specs
from .turns import (
    FORMATS,
    ToolCall,
    Turn,
    TurnError,
    TurnFormatError,
    parse_turn,
    proposal_from_turn,
    turn_shapes,
)

__all__ = [
    "FORMATS",
    "AgentEvent",
    "AgentLoop",
    "AgentOutcome",
    "GeneratorError",
    "ModelGenerator",
    "OpenAIChatGenerator",
    "ScriptedGenerator",
    "ToolCall",
    "Turn",
    "TurnError",
    "TurnFormatError",
    "model_tool_name",
    "parse_turn",
    "proposal_from_turn",
    "results_to_messages",
    "tool_result_text",
    "tool_specs",
    "turn_shapes",
]
