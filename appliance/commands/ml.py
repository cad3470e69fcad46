"""``tapsift ml train|evaluate|info|predict|convert``: the text classifier (see inspectors/ml_text.py).

Models are JSON (data only). ``convert`` turns the pickles earlier versions wrote into JSON, once,
on an administrator's command; nothing else reads a pickle.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from inspectors.modelstore import DEFAULT_MODEL_DIR


def _err(msg: str) -> int:
    print(f"tapsift: {msg}", file=sys.stderr)
    return 1


def _load(path: str) -> object:
    """A JSON model file, or the newest one of a folder (any path: an administrator's command)."""
    from inspectors.ml_text import ModelError, TextModel, latest_model

    if Path(path).is_dir():
        got = latest_model(path)
        if got is None:
            hint = " (pickles of an earlier version are there: 'tapsift ml convert' them)" \
                if any(Path(path).glob("text-v*.pkl")) else ""
            raise ModelError(f"no text-vNNNN.json model in {path}{hint}")
        path = str(got)
    return TextModel.load(path)


def _train(args: argparse.Namespace) -> int:
    from inspectors.ml_text import load_labelled, next_model_path, train

    try:
        texts, labels = load_labelled(args.data)
    except (OSError, ValueError) as exc:
        return _err(str(exc))
    counts = {lab: labels.count(lab) for lab in sorted(set(labels))}
    print(f"{len(texts)} documents: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    try:
        model, rep = train(texts, labels, test_size=args.test_size, seed=args.seed, ngram_max=args.ngram_max,
                           c=args.C)
    except ValueError as exc:
        return _err(f"cannot train: {exc}")
    if args.output:
        path, version = Path(args.output), 0
    else:
        path, version = next_model_path(args.model_dir)
    model.version = version
    model.save(path)
    print(f"\nheld-out split ({int(args.test_size * 100)} %, seed {args.seed}); negative label: "
          f"{model.negative or '(none)'}\n")
    print(rep.table())
    print(f"\nmodel version {version} → {path} (refit on all {len(texts)} documents; "
          f"fit {model.metrics['fit_seconds']} s on the training split)")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from inspectors.ml_text import TextModel, evaluate, load_labelled

    try:
        model: TextModel = _load(args.model)  # type: ignore[assignment]
        texts, labels = load_labelled(args.data)
    except (OSError, ValueError) as exc:
        return _err(str(exc))
    unknown = sorted(set(labels) - set(model.labels))
    if unknown:
        print(f"warning: labels the model does not know: {unknown}", file=sys.stderr)
    rep = evaluate(model, texts, labels)
    print(f"model {model.path} (version {model.version}) on {len(texts)} documents of {args.data}\n")
    print(rep.table())
    if args.json:
        Path(args.json).write_text(json.dumps(rep.to_json(), indent=2))
    return 0


def _info(args: argparse.Namespace) -> int:
    from inspectors.ml_text import TextModel

    try:
        m: TextModel = _load(args.model)  # type: ignore[assignment]
    except (OSError, ValueError) as exc:
        return _err(str(exc))
    held = m.metrics.get("held_out", {})
    macro = held.get("macro", {})
    print(f"{m.path}: version {m.version}, created {m.created}, scikit-learn {m.sklearn}\n"
          f"labels: {', '.join(m.labels)} (negative: {m.negative or '-'})\nparams: {m.params}\n"
          f"held-out macro P/R/F1: {macro.get('precision', 0):.3f} / {macro.get('recall', 0):.3f} / "
          f"{macro.get('f1', 0):.3f} on {m.metrics.get('test_docs', '?')} documents")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from inspectors.ml_text import TextModel, read_text_file

    try:
        m: TextModel = _load(args.model)  # type: ignore[assignment]
    except (OSError, ValueError) as exc:
        return _err(str(exc))
    for f in args.files:
        text = sys.stdin.read() if f == "-" else read_text_file(Path(f))
        probs = m.predict_proba([text])[0]
        best = sorted(probs.items(), key=lambda kv: -kv[1])
        print(f"{f}\t" + "\t".join(f"{k}={v:.3f}" for k, v in best))
    return 0


def _convert(args: argparse.Namespace) -> int:
    from inspectors.ml_text import convert_folder

    target = Path(args.target)
    if not target.exists():
        return _err(f"{target}: no such file or folder")
    results = convert_folder(target)
    if not results:
        print(f"{target}: no text-vNNNN.pkl to convert")
        return 0
    failed = 0
    for src, dst, msg in results:
        if dst is None and not msg.endswith("skipped"):
            failed += 1
            print(f"tapsift: {src}: {msg}" if not msg.startswith(str(src)) else f"tapsift: {msg}", file=sys.stderr)
        else:
            print(msg)
    if not failed:
        print("the pickles are no longer read; delete them once the JSON models are in use")
    return 1 if failed else 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ml", help="text classifier: train, evaluate, inspect models")
    ps = p.add_subparsers(dest="ml_command", required=True, metavar="ACTION")
    t = ps.add_parser("train", help="train from DATA/<label>/* and print P/R/F1 on a held-out split")
    t.add_argument("data", metavar="DATA")
    t.add_argument("--model-dir", default=DEFAULT_MODEL_DIR,
                   help="write text-vNNNN.json with the next version number here (the sensor's "
                        "inspection.model_dir)")
    t.add_argument("-o", "--output", help="write exactly this file instead")
    t.add_argument("--test-size", type=float, default=0.2)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--ngram-max", type=int, default=4)
    t.add_argument("--C", type=float, default=4.0, help="inverse regularisation strength")
    t.set_defaults(func=_train)
    e = ps.add_parser("evaluate", help="P/R/F1 of a model on a labelled folder set")
    e.add_argument("model", help="model file, or a model folder (newest version)")
    e.add_argument("data", metavar="DATA")
    e.add_argument("--json", help="also write the figures as JSON")
    e.set_defaults(func=_evaluate)
    i = ps.add_parser("info", help="a model's version, labels and held-out figures")
    i.add_argument("model")
    i.set_defaults(func=_info)
    pr = ps.add_parser("predict", help="label probabilities of text files ('-' = stdin)")
    pr.add_argument("model")
    pr.add_argument("files", nargs="+")
    pr.set_defaults(func=_predict)
    c = ps.add_parser("convert", help="convert pickled models of an earlier version to JSON (once, as an "
                                      "administrator: the pickle is read, through a restricted unpickler)")
    c.add_argument("target", metavar="PICKLE_OR_FOLDER")
    c.set_defaults(func=_convert)
