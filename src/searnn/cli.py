"""Command-line interface: ``searnn train | evaluate | predict | tasks | experiment | report | plot``.

Every option of a run can be given on the command line (``--lr 0.5``) or in a YAML file
(``--config FILE``); the command line wins. ``searnn train --task T --objective O --help`` lists the
options of that task and objective with their defaults.

Conventions: boolean options are switches (``--lazy``, ``--no-lazy``, or ``--lazy true``); options are never
abbreviated; a bad input is one line ``searnn CMD: error: ...`` on stderr naming the option as typed or the
file and line (status 1, 2 for a malformed command line); nothing is written to a run directory before the
run's inputs are checked; a closed stdout pipe (``| head -1``) ends quietly with status 141.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import sys
from pathlib import Path
from typing import Any

from searnn.cliparse import CliParser, Switch, UsageError
from searnn.config import (
    TrainConfig,
    build_config,
    field_type,
    option_owner,
    read_yaml,
    section_classes,
    unknown_key,
)
from searnn.errors import SearnnError
from searnn.preflight import check_run_dir_writable
from searnn.ranges import flag


def _type_name(typ: Any) -> str:
    return getattr(typ, "__name__", str(typ).replace("typing.", ""))


def hidden_task_options(task: str) -> tuple[str, ...]:
    """Common task options that task ``task`` does not use (left out of its command line and help)."""
    from searnn.data.registry import task_config_class

    return tuple(getattr(task_config_class(task), "unused_options", ()))


def add_config_options(parser: argparse.ArgumentParser, task: str, objective: str) -> None:
    """One ``--option`` per field of the four config sections (values parsed later, as strings).

    Boolean fields are switches: ``--lazy``, ``--no-lazy`` or ``--lazy VALUE``."""
    hidden = hidden_task_options(task)
    for section, cls in section_classes(task, objective).items():
        title = {"task": f"task options ({task})", "objective": f"objective options ({objective})"}.get(
            section, f"{section} options")
        group = parser.add_argument_group(title)
        for f in dataclasses.fields(cls):
            if section == "task" and f.name in hidden:
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            typ = field_type(cls, f)
            help_text = f"{f.metadata.get('help', '')} [{_type_name(typ)}, default: {default!r}]"
            if typ is bool:
                group.add_argument(flag(f.name), dest=f.name, default=argparse.SUPPRESS, action=Switch,
                                   metavar="BOOL", help=help_text)
            else:
                group.add_argument(flag(f.name), dest=f.name, default=argparse.SUPPRESS,
                                   metavar=_type_name(typ).upper(), help=help_text)


def unknown_train_option(arg: str, parser: argparse.ArgumentParser, task: str, objective: str) -> SearnnError:
    """The error for an unrecognised ``searnn train`` argument: the option of another objective or task,
    a common task option this task does not use, or the closest valid options."""
    if not arg.startswith("-"):
        return UsageError(f"unexpected argument {arg!r}: every value follows its --option (see searnn train --help)")
    key = arg.lstrip("-").split("=")[0].replace("-", "_")
    if key in hidden_task_options(task):
        return UsageError(f"{flag(key)} does not apply to --task {task}")
    valid = [a.dest for a in parser._actions if a.dest not in ("help", "config")]
    return UsageError(str(unknown_key(key, valid, as_flags=True, owner=option_owner(key, task, objective))))


def _divergence_help() -> str:
    from searnn.divergence import POLICY_HELP

    return POLICY_HELP


def parse_train_args(argv: list[str]) -> dict[str, Any]:
    """Two passes: first find --task/--objective/--config, then parse every option of those."""
    pre = CliParser(prog="searnn train", add_help=False)
    pre.add_argument("--config", default=None)
    pre.add_argument("--task", default=None)
    pre.add_argument("--objective", default=None)
    known, _ = pre.parse_known_args(argv)
    values: dict[str, Any] = read_yaml(known.config) if known.config else {}
    task = str(known.task or values.get("task", TrainConfig.task))
    objective = str(known.objective or values.get("objective", TrainConfig.objective))
    parser = CliParser(
        prog="searnn train",
        description="Train a sequence-to-sequence model. Options come from defaults < --config FILE < "
        "command line. Pass --task and --objective before --help to list their options.",
        epilog=_divergence_help(),
    )
    parser.add_argument("--config", default=None, help="YAML file of options (flat or sectioned)")
    add_config_options(parser, task, objective)
    namespace, unknown = parser.parse_known_args(argv)
    if unknown:
        arg = next((u for u in unknown if u.startswith("-")), unknown[0])
        raise unknown_train_option(arg, parser, task, objective)
    args = vars(namespace)
    args.pop("config", None)
    values.update(args)
    return values


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_train(argv: list[str]) -> int:
    import signal

    from searnn import distributed
    from searnn.precision import check_precision
    from searnn.train import resolve_device, run

    cfg = build_config(parse_train_args(argv))
    check_run_dir_writable(cfg.train.run_dir)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # a killed run checkpoints like a Ctrl-C'd one
    if cfg.train.nproc > 1 and not distributed.launched_by_torchrun():  # --nproc N: torchrun on this machine
        distributed.check_nproc(cfg.train.nproc, cfg.train.device)
        check_precision(cfg.train.precision, resolve_device(cfg.train.device))  # before starting N processes
        return distributed.launch_local(argv, cfg.train.nproc)
    results = run(cfg)
    if not distributed.env_context().is_main:
        return 0
    print(json.dumps({k: results[k] for k in ("task", "objective", "metric", "valid", "test", "epochs",
                                              "seconds_per_epoch", "signature")}, indent=2))
    return 0


def load_run(run_dir: str, overrides: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """Load a run dir's config (with evaluation overrides), task, best model and device."""
    import torch

    from searnn.checkpoint import BEST, CONFIG, load_checkpoint, saved_config_values
    from searnn.data.registry import load_task
    from searnn.run_setup import build_model, check_vocabs, resolve_device

    path = Path(run_dir)
    if not (path / CONFIG).exists():
        raise SearnnError(f"{path} is not a run directory (no {CONFIG}); pass the --run-dir of a `searnn train`")
    if not (path / BEST).exists():
        raise SearnnError(f"{path} has no {BEST} yet: train at least one epoch first")
    values = saved_config_values(path)
    values.update({k: v for k, v in overrides.items() if v is not None})
    cfg = build_config(values)
    torch.set_num_threads(cfg.train.threads)
    device = resolve_device(cfg.train.device)
    task = load_task(cfg.train.task, cfg.task)
    check_vocabs(path, task)
    model = build_model(cfg, task).to(device)
    try:
        model.load_state_dict(load_checkpoint(path / BEST, device, what=str(path))["model"])
    except RuntimeError as e:
        raise SearnnError(f"{path / BEST}: does not fit the run's model ({str(e).splitlines()[0]})") from None
    model.eval()
    return cfg, task, model, device


def decode_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--beam", type=int, default=None, help="beam size (default: the run's)")
    parser.add_argument("--len-norm", dest="len_norm", type=float, default=None, help="beam length norm")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda")
    parser.add_argument("--eval-batch-size", dest="eval_batch_size", type=int, default=None)


def cmd_evaluate(argv: list[str]) -> int:
    from searnn.evaluate import evaluate

    parser = CliParser(prog="searnn evaluate", description="Score a run's best checkpoint.")
    parser.add_argument("run_dir")
    parser.add_argument("--split", default="test", choices=["train", "valid", "test"])
    parser.add_argument("--save-hyps", dest="save_hyps", default=None, metavar="FILE",
                        help="also write the decoding to FILE, one line per example in split order (as the "
                        "test_hyps.txt that training writes)")
    decode_options(parser)
    args = vars(parser.parse_args(argv))
    run_dir, split, save_hyps = args.pop("run_dir"), args.pop("split"), args.pop("save_hyps")
    cfg, task, model, device = load_run(run_dir, args)
    result = evaluate(model, task, split, cfg.train, device, keep_hyps=bool(save_hyps))
    if save_hyps:
        from searnn.evaluate import hyps_text
        from searnn.fileio import atomic_write_text

        hyps = result.pop("hyps")
        try:
            atomic_write_text(hyps_text(task, hyps), Path(save_hyps))  # type: ignore[arg-type]
        except OSError as e:
            raise SearnnError(f"--save-hyps {save_hyps}: cannot write ({e.strerror or e})") from None
    print(json.dumps({"split": split, "metric": task.metric, **result}, indent=2, default=str))
    return 0


def cmd_predict(argv: list[str]) -> int:
    import torch

    from searnn.data.batch import Example
    from searnn.errors import DataError
    from searnn.evaluate import predict

    parser = CliParser(
        prog="searnn predict",
        description="Read source lines on stdin (the task's source format), write one prediction per line.",
    )
    parser.add_argument("run_dir")
    decode_options(parser)
    args = vars(parser.parse_args(argv))
    cfg, task, model, device = load_run(args.pop("run_dir"), args)
    examples = []
    tabbed = 0
    for lineno, line in enumerate(sys.stdin, 1):
        line = line.rstrip("\r\n")
        if lineno == 1:
            line = line.removeprefix("\ufeff")
        if task.name == "tsv" and "\t" in line:
            line, tabbed = line.split("\t", 1)[0], tabbed + 1
        try:
            src = task.parse_source(line)
        except DataError as e:
            raise DataError(f"<stdin>:{lineno}: {e}") from None
        if len(src) == 0:
            raise DataError(f"<stdin>:{lineno}: empty source sequence")
        examples.append(Example(src=src, tgt=[]))
    if tabbed:
        print(f"searnn predict: warning: {tabbed} input line(s) hold a TAB; predicting from the source column "
              "(the text before the first TAB) only", file=sys.stderr)
    unknown = count_unknown(examples, task)
    if unknown:
        print(f"searnn predict: warning: {unknown} source token(s) are not in the training vocabulary and were "
              "read as UNK", file=sys.stderr)
    with torch.no_grad():
        hyps = predict(model, task, examples, cfg.train, device)
    for hyp in hyps:
        print(task.format_output(hyp))
    return 0


def count_unknown(examples: list[Any], task: Any) -> int:
    """Source positions whose first token stream is UNK (0 for feature sources such as OCR pixels)."""
    from searnn.data.vocab import UNK_ID

    if not task.src_vocabs:
        return 0
    return sum(1 for ex in examples for position in ex.src if position[0] == UNK_ID)


def cmd_tasks(argv: list[str]) -> int:
    from searnn.data.registry import TASKS

    CliParser(prog="searnn tasks", description="List the tasks.").parse_args(argv)
    for name, (_cls, load) in TASKS.items():
        doc = (sys.modules[load.__module__].__doc__ or "").strip().splitlines()
        print(f"{name:12s} {doc[0] if doc else ''}")
    return 0


def cmd_experiment(argv: list[str]) -> int:
    from searnn.experiment import main as experiment_main

    return experiment_main(argv)


def cmd_report(argv: list[str]) -> int:
    from searnn.report import main as report_main

    return report_main(argv)


def cmd_plot(argv: list[str]) -> int:
    from searnn.plot import main as plot_main

    return plot_main(argv)


COMMANDS = {
    "train": (cmd_train, "train a model (MLE, SeaRNN, loss smoothing, ...)"),
    "evaluate": (cmd_evaluate, "score a trained run on a split; prints JSON"),
    "predict": (cmd_predict, "decode source lines read on stdin"),
    "tasks": (cmd_tasks, "list the tasks"),
    "experiment": (cmd_experiment, "run a grid of (row x seed) trainings, resumable; prints the results table"),
    "report": (cmd_report, "aggregate finished run dirs into a results table (mean ± std over seeds)"),
    "plot": (cmd_plot, "plot validation curves of run dirs (PNG)"),
}


def usage() -> str:
    lines = ["usage: searnn COMMAND [options]   (searnn COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:10s} {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def unknown_command(name: str) -> str:
    close = difflib.get_close_matches(name, list(COMMANDS), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"searnn: unknown command {name!r}{hint} (valid: {', '.join(COMMANDS)})"


def _silence_stdout() -> None:
    """After a broken pipe (``searnn evaluate DIR | head -1``): point stdout at /dev/null so that the
    interpreter's final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (captured in tests)
        pass
    finally:
        os.close(devnull)


BROKEN_PIPE = 141
"""Exit status when the reader of stdout went away (128 + SIGPIPE, as a shell reports a killed ``cat``)."""


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. User errors print one line ``searnn CMD: error: ...`` on stderr: status 2 for a
    malformed command line, 1 for other errors; 130 after Ctrl-C; 141 when stdout is a closed pipe."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(usage(), file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        import searnn

        print(f"searnn {searnn.__version__}")
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(unknown_command(name), file=sys.stderr)
        return 2
    try:
        code = COMMANDS[name][0](argv[1:])
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        _silence_stdout()
        return BROKEN_PIPE
    except UsageError as e:
        print(f"searnn {name}: error: {e}", file=sys.stderr)
        return 2
    except SearnnError as e:
        print(f"searnn {name}: error: {one_line(str(e))}", file=sys.stderr)
        return 1
    except OSError as e:  # a file the user named cannot be read or written
        where = f"{e.filename}: " if e.filename else ""
        print(f"searnn {name}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"searnn {name}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def one_line(text: str) -> str:
    """Collapse a message onto one line (errors are one line on stderr)."""
    return " ".join(text.split()) if "\n" in text else text


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
