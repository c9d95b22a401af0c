"""Command-line interface: ``searnn train | evaluate | predict | tasks | experiment | report | plot``.

Every option of a run can be given on the command line (``--lr 0.5``) or in a YAML file
(``--config FILE``); the command line wins. ``searnn train --task T --objective O --help`` lists the
options of that task and objective with their defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from searnn.config import TrainConfig, build_config, field_type, read_yaml, section_classes, unknown_key
from searnn.errors import SearnnError


def _type_name(typ: Any) -> str:
    return getattr(typ, "__name__", str(typ).replace("typing.", ""))


def add_config_options(parser: argparse.ArgumentParser, task: str, objective: str) -> None:
    """One ``--option`` per field of the four config sections (values parsed later, as strings)."""
    for section, cls in section_classes(task, objective).items():
        title = {"task": f"task options ({task})", "objective": f"objective options ({objective})"}.get(
            section, f"{section} options")
        group = parser.add_argument_group(title)
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            typ = field_type(cls, f)
            help_text = f"{f.metadata.get('help', '')} [{_type_name(typ)}, default: {default!r}]"
            group.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=argparse.SUPPRESS,
                               metavar=_type_name(typ).upper(), help=help_text)


def _divergence_help() -> str:
    from searnn.divergence import POLICY_HELP

    return POLICY_HELP


def parse_train_args(argv: list[str]) -> dict[str, Any]:
    """Two passes: first find --task/--objective/--config, then parse every option of those."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    pre.add_argument("--task", default=None)
    pre.add_argument("--objective", default=None)
    known, _ = pre.parse_known_args(argv)
    values: dict[str, Any] = read_yaml(known.config) if known.config else {}
    task = known.task or values.get("task", TrainConfig.task)
    objective = known.objective or values.get("objective", TrainConfig.objective)
    parser = argparse.ArgumentParser(
        prog="searnn train",
        description="Train a sequence-to-sequence model. Options come from defaults < --config FILE < "
        "command line. Pass --task and --objective before --help to list their options.",
        epilog=_divergence_help(),
    )
    parser.add_argument("--config", default=None, help="YAML file of options (flat or sectioned)")
    add_config_options(parser, str(task), str(objective))
    namespace, unknown = parser.parse_known_args(argv)
    if unknown:
        flag = next((u for u in unknown if u.startswith("--")), unknown[0])
        valid = [a.dest for a in parser._actions if a.dest not in ("help", "config")]
        raise unknown_key(flag.lstrip("-").split("=")[0].replace("-", "_"), valid)
    args = vars(namespace)
    args.pop("config", None)
    values.update(args)
    return values


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_train(argv: list[str]) -> int:
    import signal

    from searnn.train import run

    cfg = build_config(parse_train_args(argv))
    signal.signal(signal.SIGTERM, _raise_interrupt)  # a killed run checkpoints like a Ctrl-C'd one
    results = run(cfg)
    print(json.dumps({k: results[k] for k in ("task", "objective", "metric", "valid", "test", "epochs",
                                              "seconds_per_epoch", "signature")}, indent=2))
    return 0


def load_run(run_dir: str, overrides: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """Load a run dir's config (with evaluation overrides), task, best model and device."""
    import torch

    from searnn.checkpoint import BEST, CONFIG, load_checkpoint, saved_config_values
    from searnn.data.registry import load_task
    from searnn.train import build_model, check_vocabs, resolve_device

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

    parser = argparse.ArgumentParser(prog="searnn evaluate", description="Score a run's best checkpoint.")
    parser.add_argument("run_dir")
    parser.add_argument("--split", default="test", choices=["train", "valid", "test"])
    decode_options(parser)
    args = vars(parser.parse_args(argv))
    run_dir, split = args.pop("run_dir"), args.pop("split")
    cfg, task, model, device = load_run(run_dir, args)
    result = evaluate(model, task, split, cfg.train, device)
    print(json.dumps({"split": split, "metric": task.metric, **result}, indent=2, default=str))
    return 0


def cmd_predict(argv: list[str]) -> int:
    import torch

    from searnn.data.batch import Example
    from searnn.errors import DataError
    from searnn.evaluate import predict

    parser = argparse.ArgumentParser(
        prog="searnn predict",
        description="Read source lines on stdin (the task's source format), write one prediction per line.",
    )
    parser.add_argument("run_dir")
    decode_options(parser)
    args = vars(parser.parse_args(argv))
    cfg, task, model, device = load_run(args.pop("run_dir"), args)
    examples = []
    for lineno, line in enumerate(sys.stdin, 1):
        line = line.rstrip("\n")
        try:
            src = task.parse_source(line)
        except DataError as e:
            raise DataError(f"<stdin>:{lineno}: {e}") from None
        if len(src) == 0:
            raise DataError(f"<stdin>:{lineno}: empty source sequence")
        examples.append(Example(src=src, tgt=[]))
    with torch.no_grad():
        hyps = predict(model, task, examples, cfg.train, device)
    for hyp in hyps:
        print(task.format_output(hyp))
    return 0


def cmd_tasks(argv: list[str]) -> int:
    from searnn.data.registry import TASKS

    argparse.ArgumentParser(prog="searnn tasks", description="List the tasks.").parse_args(argv)
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        import searnn

        print(f"searnn {searnn.__version__}")
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"searnn: unknown command {name!r}; valid: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[name][0](argv[1:])
    except SearnnError as e:
        print(f"searnn {name}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"searnn {name}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
