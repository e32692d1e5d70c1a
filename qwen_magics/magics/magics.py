"""The ``%%qwen`` cell magic and the ``%qwen`` line magic: parse the options, then hand off.

Options are parsed with IPython's magic_arguments, so ``%%qwen?`` shows them. Defaults come from the
configuration layer (``%config QwenMagics.temperature = 0.3`` or ``%qwen config temperature=0.3``);
options in a cell win. A user's mistake is a one-line UsageError and nothing is sent. The work is
done by plain functions: ``display.answer.show_answer``, ``widgets.panel.panel``,
``comparison.compare.compare``, ``structured.ask.ask_json``.
"""

from __future__ import annotations

import builtins
import difflib
import inspect
import keyword
import os
import re
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.utils.process import arg_split
from traitlets import Bool, Float, Int, TraitError, Unicode, observe, validate

from .. import config, historydb, simulator
from ..api import record, toolloop
from ..api import replay as _replay
from ..api.params import PARAMS, build_messages, check_images, check_params
from ..display.answer import MAX_RATE, error_title, show_answer, show_error
from ..display.confirm import ask_before_call
from ..display.live import is_rich_frontend
from ..errors import ConfigError, ParameterError, QwenError
from ..models import MODELS, get_model
from ..templating import Content, TemplateError, fields, fill, fill_content, looks_templated
from .commandline import as_prompt, read_command, read_settings
from .commands import (
    config_bundle,
    fetch_model_ids,
    help_bundle,
    models_bundle,
    replay_bundle,
    set_defaults,
    usage_bundle,
)
from .conversation import Conversation
from .helpend import install as install_help_end
from .helpend import uninstall as uninstall_help_end
from .lasterror import DEFAULT_QUESTION, last_error, with_error
from .log import log_bundle, notebook_fields

__all__ = ["QwenMagics", "load", "unload"]

# ParameterError.param -> what the user typed
OPTION_NAMES = {
    "model": "-m/--model",
    "system": "-s/--system",
    "temperature": "-t/--temperature",
    "top_p": "-p/--top-p",
    "top_k": "--top-k",
    "presence_penalty": "--presence-penalty",
    "thinking": "--thinking/--no-thinking",
    "budget": "--budget",
    "max_tokens": "--max-tokens",
    "seed": "--seed",
    "stop": "--stop",
    "stream": "--no-stream",
    "response_format": "--json/--schema",
    "messages": "-c/--continue",
    "prompt": "the prompt",
    "schema": "--schema",
    "multi": "--multi",
    "grid": "--compare",
    "samples": "--samples",
    "checks": "--check",
    "cases": "--cases",
    "prompts": "--prompts",
    "threshold": "--threshold",
    "template": "the prompt",
    "tools": "--tools",
    "max_steps": "--max-steps",
    "tool_choice": "--tools",
    "n": "--tools",
    "confirm": "--confirm",
}
# the options that have a default (a trait) too; stop is given per cell only
REQUEST_PARAMS = tuple(p for p in PARAMS if p not in ("stop", "response_format"))
_TOKEN = re.compile(r"""(?:[^\s'"]+|'[^']*'|"(?:\\.|[^"\\])*"|['"])+""")

_offline_started = False
_notice_shown = False


@magics_class
class QwenMagics(Magics):
    """``%%qwen`` / ``%qwen``. Its traits are the configuration layer of every cell's defaults."""

    model = Unicode(None, allow_none=True, help="Model for cells without -m.").tag(config=True)
    system = Unicode(None, allow_none=True, help="System prompt for new conversations.").tag(config=True)
    temperature = Float(None, allow_none=True, help="Default temperature, [0, 2).").tag(config=True)
    top_p = Float(None, allow_none=True, help="Default top_p, (0, 1].").tag(config=True)
    top_k = Int(None, allow_none=True, help="Default top_k.").tag(config=True)
    presence_penalty = Float(None, allow_none=True, help="Default presence_penalty, [-2, 2].").tag(
        config=True
    )
    thinking = Bool(None, allow_none=True, help="Thinking on/off; None: the model's default.").tag(
        config=True
    )
    budget = Int(None, allow_none=True, help="Default thinking budget in tokens.").tag(config=True)
    max_tokens = Int(None, allow_none=True, help="Default max_tokens.").tag(config=True)
    seed = Int(None, allow_none=True, help="Default seed.").tag(config=True)
    raw = Bool(False, help="Plain text instead of Markdown.").tag(config=True)
    stream = Bool(True, help="Stream answers as they arrive.").tag(config=True)
    max_rate = Float(MAX_RATE, help="Most display updates per second while streaming.").tag(config=True)
    max_prompt_chars = Int(
        200_000,
        allow_none=True,
        help="Longest prompt (system prompt included) a cell sends, in characters; None: no limit. "
        "A longer one is usually a variable filled in by mistake, and every character is billed.",
    ).tag(config=True)

    history = Unicode(
        None,
        allow_none=True,
        help="Where answers are recorded: a file, or 'off'; None: QWEN_HISTORY, else "
        "~/.qwen-magics/history.db. `%qwen log` and qwen_magics.history() read it.",
    ).tag(config=True)

    replay = Unicode(
        None,
        allow_none=True,
        help="Answer from the record: 'on', 'only' or 'off', then optionally a history database or a "
        "saved .ipynb to replay from, and --pace; None: QWEN_REPLAY, else off. `%qwen replay` sets it.",
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.conversation = Conversation()
        self._server_models: dict[str, set[str]] = {}  # base URL -> the ids its /models listed

    @validate(*REQUEST_PARAMS)
    def _check_default(self, proposal: Any) -> Any:
        name, value = proposal["trait"].name, proposal["value"]
        if value is not None:
            try:
                check_params({name: value}, "")
            except ParameterError as exc:
                raise TraitError(str(exc)) from None
        return value

    @validate("max_prompt_chars")
    def _check_limit(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None and value < 1:
            raise TraitError(
                f"max_prompt_chars must be at least 1 (characters), or none for no limit; got {value}"
            )
        return value

    @observe("history")
    def _use_history(self, change: Any) -> None:
        historydb.use(change["new"])

    @validate("replay")
    def _check_replay(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None:
            try:
                _replay.parse(value)
            except ValueError as exc:
                raise TraitError(str(exc)) from None
        return value

    @observe("replay")
    def _use_replay(self, change: Any) -> None:
        _replay.use(change["new"])

    def defaults(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ("model", "system", *REQUEST_PARAMS)}

    # -- the magic ----------------------------------------------------------------------------
    @magic_arguments()
    @argument("-m", "--model", metavar="MODEL", help="model name (list them with: qwen models)")
    @argument("-s", "--system", metavar="TEXT", help="system prompt; a new conversation keeps it")
    @argument("-t", "--temperature", type=float, metavar="T", help="sampling temperature, [0, 2)")
    @argument("-p", "--top-p", type=float, metavar="P", help="nucleus sampling, (0, 1]")
    @argument("--top-k", type=int, metavar="K", help="sample from the k most likely tokens (0 or >100: off)")
    @argument("--presence-penalty", type=float, metavar="X", help="discourage repetition, [-2, 2]")
    @argument(
        "--thinking", dest="thinking", action="store_const", const=True, default=None, help="turn thinking on"
    )
    @argument("--no-thinking", dest="thinking", action="store_const", const=False, help="turn thinking off")
    @argument("--budget", type=int, metavar="N", help="most tokens spent thinking")
    @argument("--max-tokens", type=int, metavar="N", help="most tokens in the answer")
    @argument("--seed", type=int, metavar="N", help="seed for reproducible sampling, [0, 2^31-1]")
    @argument("--stop", action="append", metavar="S", help="stop at this text (repeatable)")
    @argument("-o", "--out", metavar="VAR", help="also keep the result in this variable")
    @argument("--force", action="store_true", help="with -o: replace a built-in, function, class or module")
    @argument("-c", "--continue", dest="cont", action="store_true", help="continue the current conversation")
    @argument("--raw", action="store_true", default=None, help="plain text instead of Markdown")
    @argument(
        "--no-stream", dest="stream", action="store_false", default=None, help="wait for the whole answer"
    )
    @argument("--panel", action="store_true", help="open the parameter panel for this prompt")
    @argument("--compare", metavar="SPEC", help='compare settings: "temperature=0.2,1.0 top_p=0.8,0.95"')
    @argument("--samples", type=int, default=1, metavar="N", help="answers per setting with --compare")
    @argument(
        "--check",
        action="append",
        metavar="SPEC",
        help='judge each answer of a comparison, e.g. "contains:Paris" (repeatable)',
    )
    @argument(
        "--cases", metavar="VAR", help="a DataFrame or list of dicts whose rows fill the prompt's {fields}"
    )
    @argument("--prompts", metavar="VAR", help="a list or dict name → template of prompt variants to compare")
    @argument(
        "--threshold", type=float, metavar="X", help="the weighted score an answer needs to pass, [0, 1]"
    )
    @argument("--json", action="store_true", help="answer as JSON (Response.data holds it)")
    @argument(
        "--schema",
        metavar="SPEC",
        help="a short form as in llm ('name, age int: in years'), or a variable holding "
        "a JSON Schema dict or pydantic model",
    )
    @argument("--multi", action="store_true", help="a list of records (shown as a DataFrame)")
    @argument(
        "--error",
        action="store_true",
        help="add the last error (its traceback and the failing cell) to the prompt; %%qwen explain asks why",
    )
    @argument(
        "--tools",
        metavar="NAMES",
        help="notebook functions the model may call, comma-separated (a name may hold a list of them)",
    )
    @argument(
        "--max-steps", type=int, metavar="N", help="with --tools: most requests in the loop (default 10)"
    )
    @argument("--confirm", action="store_true", help="with --tools: ask before each call")
    @no_var_expand  # a line's prompt is filled by the templating (a table whole), not by str()
    @line_cell_magic
    def qwen(self, line: str, cell: str | None = None) -> None:
        """Ask Qwen. ``%%qwen [options]`` takes the cell as the prompt; ``%qwen [options] prompt``
        takes one line. ``%qwen config|models|history|reset|help|login|explain|batches`` and ``%qwen panel``
        are commands; ``%qwen -- reset the counter`` sends a line that starts with one as a prompt.
        Prompt variables: {name} and {expression}; {{ and }} for literal braces.
        """
        if cell is None:
            if not line.strip():
                return self._show(usage_bundle())
            command = read_command(line)
            if command is None:
                options, prompt = self._split_line(line)
                args = self._parse(options)
            elif command[0] == "panel":
                options, prompt = self._split_line(command[1])
                args = self._parse(options)
                args.panel = True
            elif command[0] == "explain":  # the last error, with a question of one's own or the usual one
                options, prompt = self._split_line(command[1])
                args = self._parse(options)
                args.error = True
                prompt = f"{DEFAULT_QUESTION} {prompt}".strip()  # `%qwen explain in French`
            elif command[0] == "config":
                return self._cmd_config(self._expand(command[1]), line)
            elif command[0] == "log":
                return self._show(log_bundle(self._expand(command[1])))
            elif command[0] == "batches":
                from .batches import batches_bundle  # the Batch API client loads when first asked

                return self._show(batches_bundle(self._expand(command[1])))
            elif command[0] == "login":
                return self._cmd_login(command[1])
            elif command[0] == "replay":
                return self._cmd_replay(self._expand(command[1]), line)
            elif command[1]:
                raise UsageError(
                    f"%qwen {command[0]} takes no arguments (got {command[1]!r}); {as_prompt(line)}"
                )
            else:
                return getattr(self, f"_cmd_{command[0]}")()
        else:
            args = self._parse(line)
            prompt = re.sub(r"\A\s*\n", "", cell).rstrip()
        return self._run(args, prompt)

    def _expand(self, text: str) -> str:
        """``{name}`` and ``$name`` in options filled as IPython fills a magic's line (as written when
        that fails); the prompt itself is left to the templating."""
        if self.shell is None or ("{" not in text and "$" not in text):
            return text
        from IPython.utils.text import DollarFormatter

        try:
            return DollarFormatter().vformat(text, args=[], kwargs=self.shell.user_ns)
        except Exception:
            return text

    def _parse(self, options: str) -> Any:
        options = self._expand(options)
        try:
            argv = arg_split(options, posix=True)
        except ValueError as exc:
            raise UsageError(f"could not read the options ({exc}); check the quotes") from None
        return type(self).qwen.parser.parse_args(argv)

    def _split_line(self, line: str) -> tuple[str, str]:
        """``%qwen -t 0.3 what's 2+2?``: the options, then the prompt exactly as typed."""
        actions = type(self).qwen.parser._option_string_actions
        tokens = list(_TOKEN.finditer(line))
        i = 0
        while i < len(tokens):
            tok = tokens[i].group()
            if tok == "--":
                rest = line[tokens[i].end() :].strip()
                return line[: tokens[i].start()], rest
            if not re.match(r"--?[A-Za-z]", tok):
                break
            name = tok.split("=", 1)[0]
            action = actions.get(name) or actions.get(tok[:2])
            i += 1
            if action is not None and action.nargs != 0 and "=" not in tok and name in actions:
                i += 1  # its value
        if i >= len(tokens):
            return line, ""
        return line[: tokens[i].start()], line[tokens[i].start() :].strip()

    # -- hand-off -----------------------------------------------------------------------------
    def _evaluation(self, args: Any, ns: dict[str, Any]) -> dict[str, Any]:
        """compare's ``checks``, ``cases``, ``prompts`` and ``threshold`` from ``--check`` specs and
        the notebook variables ``--cases`` and ``--prompts`` name; ``columns``: the cases' columns."""
        from .. import checks

        out: dict[str, Any] = {}
        for option, name in (("--cases", args.cases), ("--prompts", args.prompts)):
            if name is None:
                continue
            if name not in ns:
                raise UsageError(f"{option}: there is no variable {name!r} in the notebook; define it first")
            out[option[2:]] = ns[name]
        cases = out.get("cases")
        if cases is not None:
            if hasattr(cases, "columns"):
                out["columns"] = [str(c) for c in cases.columns]
            elif isinstance(cases, list) and all(isinstance(c, dict) for c in cases):
                out["columns"] = list(dict.fromkeys(str(k) for c in cases for k in c))
            else:
                raise UsageError(
                    f"--cases: {args.cases} is a {type(cases).__name__}, not a DataFrame or a list of dicts"
                )
        if args.check:
            found = []
            for spec in args.check:
                try:
                    found.append(checks.parse_spec(spec))
                except (ValueError, QwenError) as exc:
                    raise UsageError(f"--check {spec}: {exc}") from None
            out["checks"] = found
        if args.threshold is not None:
            out["threshold"] = args.threshold
        return out

    def _run(self, args: Any, prompt: str) -> None:
        ns = self.shell.user_ns if self.shell is not None else {}
        out = args.out
        if out is not None and (not out.isidentifier() or keyword.iskeyword(out)):
            raise UsageError(f"-o/--out: {out!r} is not a valid variable name")
        hidden = getattr(self.shell, "user_ns_hidden", {})
        taken = _taken(out, ns, hidden) if out is not None and not args.force else None
        if taken:
            raise UsageError(
                f"-o/--out: {out!r} is {taken}; keeping the answer there would replace it. "
                "Choose another name, or add --force to replace it"
            )
        chosen = {"panel": args.panel, "compare": args.compare is not None, "json": args.json}
        modes = [m for m, on in chosen.items() if on]
        if args.schema is not None or args.multi:  # --schema '' is a mistake, not "no schema"
            args.json = True
            modes = [m for m in modes if m != "json"] + ["json"]
        if len(modes) > 1:
            raise UsageError(f"choose one of --panel, --compare, --json/--schema (got {', '.join(modes)})")
        mode = modes[0] if modes else "answer"
        evaluating = [
            name
            for name, on in (
                ("--check", args.check),
                ("--cases", args.cases is not None),
                ("--prompts", args.prompts is not None),
                ("--threshold", args.threshold is not None),
            )
            if on
        ]
        if evaluating and mode == "answer":
            mode = "compare"  # judging answers is a comparison, of one setting if no --compare
        elif evaluating and mode != "compare":
            raise UsageError(f"{evaluating[0]} goes with --compare, not with --{mode}")
        evaluation = self._evaluation(args, ns) if mode == "compare" else {}
        if mode == "panel" and not is_rich_frontend():
            raise UsageError(
                "the panel needs a notebook front end (JupyterLab, Notebook or VS Code); in a terminal "
                "set parameters with the options (%qwen -t 0.3 ...) or defaults with %qwen config "
                "temperature=0.3 (or %config QwenMagics.temperature = 0.3)"
            )
        if args.cont and mode != "answer":
            raise UsageError("-c/--continue works with plain answers, not with --panel/--compare/--json")
        if mode == "answer" and args.samples != 1:
            raise UsageError("--samples goes with --compare")
        tools = self._tools(args, ns, mode)

        explicit = {name: getattr(args, name) for name in REQUEST_PARAMS}
        params = {
            name: explicit[name] if explicit[name] is not None else getattr(self, name)
            for name in REQUEST_PARAMS
        }
        if args.stop:
            params["stop"] = args.stop
        stream = self.stream if args.stream is None else args.stream
        raw = self.raw if args.raw is None else args.raw
        limit = self.max_prompt_chars
        try:
            # a case's {column} is filled per case by compare: keep it as written here
            kept = {k: f"{{{k}}}" for k in evaluation.get("columns", ())}
            system_given = fill(args.system, ns) if args.system is not None else None
            system_size = len(system_given if system_given is not None else self.system or "")
            budget = None if limit is None else max(0, limit - system_size)
            prompt_text = fill_content(
                prompt, {**ns, **kept} if kept else ns, budget=budget, output=self._output_text
            )
        except TemplateError as exc:
            if kept:
                raise UsageError(
                    f"the prompt: {{{exc.field}}} is not a column of --cases {args.cases} "
                    f"(its columns are {', '.join(kept)}) nor a notebook variable; nothing was sent"
                ) from None
            raise UsageError(str(exc)) from None
        if args.error:
            error = last_error(self.shell)
            if error is None:
                raise UsageError(
                    "there is no error to explain yet: run the cell that fails, then %qwen explain"
                )
            prompt_text = with_error(
                prompt_text if _text_only(prompt_text).strip() else DEFAULT_QUESTION, error
            )
        notes = []
        if fields(prompt) is None and looks_templated(prompt):
            notes.append("prompt sent as written: its braces are not all {variables} (use {{ }})")

        conv = self.conversation
        if args.cont:
            system = system_given if system_given is not None else conv.system
            messages = conv.messages
            note = conv.continue_note()
            if note:
                notes.append(note)
        else:
            system = system_given if system_given is not None else self.system
            messages = []
        size = len(_text_only(prompt_text)) + len(system or "")
        if limit is not None and size > limit:
            raise UsageError(
                f"the prompt is {size:,} characters (system prompt included), more than "
                f"QwenMagics.max_prompt_chars = {limit:,}; nothing was sent. Such a prompt is usually a "
                "variable filled in by mistake, and every character is billed. To send it anyway: "
                f"%qwen config max_prompt_chars={size} (none: no limit)"
            )
        if args.model is not None and not args.model.strip():
            raise UsageError("-m/--model: the model name is empty; leave -m out for the default model")
        try:
            model = args.model or self.model or config.settings().model
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
        self._check_model(model, "-m/--model" if args.model else self._model_source())

        def where(param: str) -> str:
            if param in explicit and explicit[param] is None:
                return f"QwenMagics.{param} (a default: %qwen config {param}=none clears it)"
            if param == "stream" and args.stream is None:
                return "QwenMagics.stream"
            return OPTION_NAMES.get(param, param)

        given = {k: v for k, v in params.items() if v is not None}
        if tools is not None:
            given.update(tools)
        try:
            check_params(params, model, stream=stream if mode == "answer" else True)
            variants = mode == "panel" or "prompts" in evaluation  # the cell may be blank then
            sent = build_messages(
                prompt_text or "?" if variants else prompt_text, system=system, messages=messages
            )
            check_images(model, sent)
            if tools is not None:
                from ..api.toolloop import prepare_loop

                prepare_loop({**given, "stream": stream}, model, **tools)
        except ParameterError as exc:
            raise UsageError(f"{where(exc.param)}: {exc}") from None

        if mode == "answer":
            response = show_answer(
                prompt_text,
                model=model,
                raw=raw,
                max_rate=self.max_rate,
                system=system,
                messages=messages or None,
                stream=stream,
                notes=notes,
                **given,
            )
            if response is None:  # an error, or stopped before the first token: no answer kept
                conv.unanswered = prompt_text
                return None
            ns["_qwen"] = response
            if out:
                ns[out] = response
            conv.record(
                prompt_text,
                response.partial_text,
                system=system,
                continued=args.cont,
                model=response.model or model,
                partial=response.incomplete,
            )
            return None
        result = self._hand_off(mode, args, prompt_text, model, system, given, where, evaluation)
        if result is None:
            return None
        if mode == "json":
            ns["_qwen"] = result
        if out:
            ns[out] = result
        return None

    def _tools(self, args: Any, ns: dict[str, Any], mode: str) -> dict[str, Any] | None:
        """``--tools a,b``: the notebook's callables (or lists of them) by name, and the loop's options."""
        if args.tools is None:
            for given, option in ((args.max_steps is not None, "--max-steps"), (args.confirm, "--confirm")):
                if given:
                    raise UsageError(f"{option} goes with --tools NAMES (the functions the model may call)")
            return None
        if mode not in ("answer", "panel"):
            raise UsageError(f"--tools works with plain answers (and -c) and --panel, not with --{mode}")
        if mode == "panel" and args.confirm:
            raise UsageError("--confirm works with plain answers; the panel runs the tools it lists")
        names = [n.strip() for n in args.tools.split(",") if n.strip()]
        if not names:
            raise UsageError(
                "--tools: name the notebook functions the model may call, as in --tools get_weather"
            )
        found: list[Any] = []
        for name in names:
            if name not in ns:
                raise UsageError(
                    f"--tools: {name!r} is not defined in the notebook; run the cell that defines it"
                )
            value = ns[name]
            items = list(value) if isinstance(value, (list, tuple)) else [value]
            if not items or not all(callable(v) for v in items):
                raise UsageError(f"--tools: {name!r} is not a function (nor a list of functions)")
            found.extend(items)
        options: dict[str, Any] = {"tools": found, "max_steps": args.max_steps or 10}
        if args.max_steps is not None:
            options["max_steps"] = args.max_steps
        options["parallel_tool_calls"] = None
        options["tool_choice"] = None
        options["confirm"] = True if args.confirm else None
        return options

    def _hand_off(
        self,
        mode: str,
        args: Any,
        prompt: Content,
        model: str,
        system: str | None,
        given: dict[str, Any],
        where: Any,
        evaluation: dict[str, Any] | None = None,
    ) -> Any:
        """The panel, the comparison grid and structured output live in their own modules."""
        params = dict(given, model=model)
        if system is not None:
            params["system"] = system
        feature = {"panel": "--panel", "compare": "--compare", "json": "--json"}[mode]
        try:
            if mode == "panel":
                from ..widgets.panel import Panel, panel

                if not isinstance(prompt, str):
                    raise UsageError(
                        "the panel edits a text prompt; a prompt with a picture goes to %%qwen, "
                        "--compare or --json"
                    )

                controls = inspect.signature(Panel).parameters
                params.pop("confirm", None)  # with --tools: None (the panel refuses --confirm)
                for name in [k for k in params if k not in controls]:
                    if name in args.__dict__ and getattr(args, name) is not None:
                        raise UsageError(f"{OPTION_NAMES.get(name, name)}: the panel has no control for it")
                    del params[name]  # a default from the configuration that the panel cannot show
                return panel(prompt, **params)
            if mode == "compare":
                from ..comparison.compare import compare, parse_grid

                try:
                    grid = parse_grid(args.compare) if args.compare is not None else {}
                except (ValueError, TypeError, QwenError) as exc:
                    raise UsageError(f"--compare: {exc}") from None
                judged = {k: v for k, v in (evaluation or {}).items() if k != "columns"}
                if "prompts" in judged and isinstance(prompt, str) and not prompt.strip():
                    prompt = None  # type: ignore[assignment]  # the variants are the prompts
                return compare(prompt, samples=args.samples, **judged, **{**params, **grid})
            from ..structured.ask import ask_json, parse_schema

            schema = None
            if args.schema is not None:
                ns = self.shell.user_ns if self.shell is not None else {}
                try:
                    schema = parse_schema(args.schema, ns)
                except (ValueError, TypeError, NameError, QwenError) as exc:
                    raise UsageError(f"--schema: {exc}") from None
            return ask_json(prompt, schema=schema, multi=args.multi, show=True, **params)
        except ImportError as exc:
            extra = "widgets" if mode == "panel" else "data"
            raise UsageError(
                f"{feature} needs more packages: pip install 'qwen-magics[{extra}]' ({exc})"
            ) from None
        except ParameterError as exc:
            raise UsageError(f"{where(exc.param)}: {exc}") from None
        except KeyboardInterrupt:
            show_error("stopped with Ctrl-C / the stop button before it finished.", title="Interrupted")
        except QwenError as exc:
            show_error(str(exc), title=error_title(exc))
        return None

    def _output_text(self, value: Any) -> Any:
        """An earlier output as the notebook showed it: its text/markdown, else its text/plain; the
        figure of what ``plt.plot`` returned."""
        first = value[0] if isinstance(value, (list, tuple)) and value else None
        figure = getattr(first, "figure", None)
        if figure is not None and (type(first).__module__ or "").startswith("matplotlib"):
            return figure
        formatter = getattr(self.shell, "display_formatter", None)
        if formatter is None:
            return value
        data, _ = formatter.format(value, include=("text/markdown", "text/plain"))
        return data.get("text/markdown") or data.get("text/plain") or str(value)

    # -- line commands ------------------------------------------------------------------------
    def _show(self, bundle: dict[str, str]) -> None:
        from IPython.display import display

        display(bundle, raw=True)

    def _cmd_help(self) -> None:
        options = []
        for action in type(self).qwen.parser._actions:
            if not action.option_strings:
                continue
            takes = "" if action.nargs == 0 else f" {action.metavar or action.dest.upper()}"
            options.append((", ".join(action.option_strings) + takes, action.help or ""))
        self._show(help_bundle(options))

    def _cmd_models(self) -> None:
        try:
            settings = config.settings()
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
        self._show(models_bundle(settings))

    def _cmd_history(self) -> None:
        self._show(self.conversation.bundle())

    def _cmd_reset(self) -> None:
        self.conversation.reset()
        print("qwen: conversation cleared; the next %%qwen cell starts a new one.")

    def _cmd_config(self, rest: str, line: str) -> None:
        try:
            tokens = read_settings(rest)
        except ValueError as exc:
            raise UsageError(f"%qwen config: could not read {rest.strip()!r} ({exc})") from None
        if tokens is None:
            raise UsageError(
                f"%qwen config takes NAME=VALUE settings (got {rest!r}), e.g. %qwen config temperature=0.3; "
                f"%qwen config alone shows them; {as_prompt(line)}"
            )
        if not tokens:
            self._show(config_bundle(self.defaults(), self._model_source()))
            return

        def check(name: str, value: Any) -> None:
            if name == "model" and isinstance(value, str) and value.strip():
                self._check_model(value, "%qwen config model", outcome="the default is unchanged")

        try:
            names = [*self.defaults(), "raw", "stream", "max_rate", "max_prompt_chars", "history"]
            done = set_defaults(self, tokens, names, check=check)
        except ValueError as exc:
            raise UsageError(f"%qwen config {exc}") from None
        print("qwen defaults: " + ", ".join(done))

    def _cmd_replay(self, rest: str, line: str) -> None:
        """``%qwen replay on|off|only [PATH] [--pace]``; alone, what is in force."""
        if rest:
            try:
                chosen = _replay.parse(rest)
            except ValueError as exc:
                raise UsageError(f"%qwen {exc}; {as_prompt(line)}") from None
            if chosen.path is not None and not chosen.path.exists():
                raise UsageError(f"%qwen replay: there is no file {str(chosen.path)!r} to replay from")
            self.replay = str(chosen)
        now = _replay.current()
        self._show(replay_bundle(now, [str(p) for p in _replay.sources(now)]))

    def _cmd_login(self, rest: str) -> None:
        """``%qwen login [region]`` (or ``--region R``): the key is asked for, never read from the line."""
        words = rest.split()
        if words and words[0].split("=", 1)[0] in ("--region", "-r", "region"):
            first, _, value = words[0].partition("=")
            words = [value, *words[1:]] if value else words[1:]
            if not words:
                raise UsageError(f"%qwen login {first}: name the region: {', '.join(config.REGIONS)}")
        region = " ".join(words) or None  # "Hong Kong" is one region
        if region is not None:
            try:
                config.region_name(region)
            except ConfigError:
                region = None
        if words and region is None:
            if any(w.startswith("sk-") or len(w) > 24 for w in words):
                raise UsageError(
                    "%qwen login takes no key on its line: that line is saved in the notebook and in "
                    "IPython's history, so take that key as seen (delete it from the cell; make a new "
                    "one in Model Studio if the notebook was shared). Run %qwen login alone and type "
                    "the key where it is not shown."
                )
            raise UsageError(
                f"%qwen login takes one region ({', '.join(config.REGIONS)}) or nothing; got {rest.strip()!r}"
            )
        from ..widgets.login import ask_key

        try:
            ask_key(region, source="%qwen login")
        except ConfigError as exc:
            raise UsageError(str(exc)) from None

    def _check_model(self, model: str, source: str, *, outcome: str = "nothing was sent") -> None:
        """A model the table does not know must be on the server's /models list (fetched once per
        server) before anything is sent. A server without that list gets the request as it is, and
        its own answer says what is wrong."""
        if get_model(model) is not None:
            return
        try:
            settings = config.settings(model=model)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
        known = self._server_models.get(settings.base_url)
        if known is None or model not in known:
            try:
                known = set(fetch_model_ids())
            except Exception:  # no list, no key, no connection: the request itself will tell
                return
            self._server_models[settings.base_url] = known
        if model not in known:
            close = difflib.get_close_matches(model, sorted(known | set(MODELS)), n=3)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise UsageError(
                f"{source}: unknown model {model!r}: {settings.where} does not list it and the model "
                f"table does not know it; {outcome}.{hint} `%qwen models` lists the models."
            )

    def _model_source(self) -> str:
        if self.model:
            return "QwenMagics.model"
        if config.configured().get("model"):
            return "configure()"
        if os.environ.get("QWEN_MODEL"):
            return "QWEN_MODEL"
        return "the package default"


def load(ip: Any) -> None:
    """Register the magics. Offline mode starts here when no key and no base URL are set."""
    global _offline_started, _notice_shown
    ip.register_magics(QwenMagics(shell=ip))
    record.add_provider(notebook_fields)  # the history learns which notebook and cell asked
    toolloop.use_asker(ask_before_call)  # confirm=True: buttons in Jupyter, a prompt elsewhere
    install_help_end(ip)  # `%qwen Is it?` is a question, not a help request
    if simulator.needed() and not simulator.is_active():
        simulator.start()
        _offline_started = True
        if not _notice_shown:
            print(simulator.NOTICE)
            _notice_shown = True


def unload(ip: Any) -> None:
    """Remove the magics and their input transformer (``%unload_ext`` / ``%reload_ext``), and the offline
    simulator we started."""
    global _offline_started
    uninstall_help_end(ip)
    record.remove_provider(notebook_fields)
    toolloop.use_asker(None)
    historydb.use(None)  # QwenMagics.history goes with the magics
    _replay.use(None)  # and QwenMagics.replay
    manager = ip.magics_manager
    for kind in ("line", "cell"):
        manager.magics[kind].pop("qwen", None)
    instance = manager.registry.pop("QwenMagics", None)
    if instance is not None and instance in getattr(ip, "configurables", []):
        ip.configurables.remove(instance)
    if _offline_started:
        simulator.stop()
        _offline_started = False


def _text_only(content: Any) -> str:
    """A prompt's characters: its text, its pictures left out (they are counted in tokens)."""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


def _taken(name: str, ns: dict[str, Any], hidden: Any) -> str | None:
    """What ``-o name`` would replace that is not a value: a built-in, a function, a class, a module,
    IPython's own ``In``/``Out``."""
    if name in hidden:
        return "one of IPython's own names"
    if name in ns:
        value = ns[name]
        if inspect.ismodule(value):
            return "a module"
        if inspect.isclass(value):
            return "a class"
        if inspect.isroutine(value):
            return "a function"
        return None
    if hasattr(builtins, name):
        return "a built-in"
    return None
