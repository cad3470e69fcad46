"""``tapsift fingerprint add|import|list|remove|export|stats``: the fingerprint library.

The library is an SQLite file (``--db``, default ``$TAPSIFT_FINGERPRINTS`` or
``/var/lib/tapsift/fingerprints.db``); policies name it as a fingerprint list's ``path``.
"""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_DB = "/var/lib/tapsift/fingerprints.db"


def _db(args: argparse.Namespace) -> str:
    return args.db or os.environ.get("TAPSIFT_FINGERPRINTS") or DEFAULT_DB


def _err(msg: str) -> int:
    print(f"tapsift: {msg}", file=sys.stderr)
    return 1


def _report(stats: object) -> int:
    print(stats)
    for p in getattr(stats, "problems", [])[:10]:
        print(f"  {p}", file=sys.stderr)
    return 0


def _add(args: argparse.Namespace) -> int:
    from fingerprints import hashing as hx
    from fingerprints.library import Entry, Library

    try:
        with Library(_db(args)) as lib:
            if args.hash:
                entries = []
                for h in args.hash:
                    algo = args.algorithm or hx.guess_algorithm(h)
                    if algo is None:
                        return _err(f"cannot tell the algorithm of {h!r}: give --algorithm")
                    e = Entry(label=args.label, category=args.category, source=args.source or "cli")
                    setattr(e, algo, hx.normalize_hex(h, algo))
                    entries.append(e)
                return _report(lib.add(entries))
            if not args.files:
                return _err("give files to hash or --hash VALUE")
            missing = [f for f in args.files if not os.path.isfile(f)]
            if missing:
                return _err(f"not a file: {missing[0]}")
            return _report(lib.add_files(args.files, category=args.category, source=args.source, label=args.label,
                                         with_pdq=args.pdq))
    except (OSError, ValueError) as exc:
        return _err(str(exc))


def _import(args: argparse.Namespace) -> int:
    """Import; exit 1 when nothing could be imported (a file of no fingerprints: wrong format,
    wrong algorithm, binary data), saying why. Everything already present is success."""
    from fingerprints.library import Library, sniff_format

    if not os.path.exists(args.source_path):
        return _err(f"{args.source_path}: no such file or folder")
    if not os.path.isdir(args.source_path) and not os.access(args.source_path, os.R_OK):
        return _err(f"{args.source_path}: not readable")
    fmt = args.format or sniff_format(args.source_path)
    try:
        with Library(_db(args)) as lib:
            if fmt == "dir":
                st = lib.import_directory(args.source_path, category=args.category, source=args.source,
                                          label=args.label, images_only=args.images_only, with_pdq=args.pdq)
            elif fmt == "csv":
                st = lib.import_csv(args.source_path, label=args.label, category=args.category, source=args.source)
            elif fmt == "hashes":
                st = lib.import_hash_list(args.source_path, args.algorithm, label=args.label, category=args.category,
                                          source=args.source)
            elif fmt == "library":
                with Library(args.source_path, readonly=True) as other:
                    st = lib.add(other.entries())
            else:
                return _err(f"unknown format {fmt!r}")
    except (OSError, ValueError) as exc:
        return _err(str(exc))
    _report(st)
    if st.added or st.duplicates:
        return 0
    if st.invalid:
        why = (f"none of its {st.invalid} entries is a fingerprint"
               + (f" of {args.algorithm}" if args.algorithm else "")
               + f" (read as {fmt!r}; is it the right file, --format and --algorithm?)")
    else:
        why = "it holds no entries"
    return _err(f"nothing imported from {args.source_path}: {why}")


def _list(args: argparse.Namespace) -> int:
    from fingerprints.library import Library

    if not os.path.exists(_db(args)):
        return _err(f"no library at {_db(args)}")
    with Library(_db(args), readonly=True) as lib:
        n = 0
        for e in lib.entries(algorithm=args.algorithm, category=args.category, label=args.label, limit=args.limit):
            hashes = " ".join(f"{a}={v}" for a, v in e.hashes().items() if args.all or a in ("md5", "phash"))
            print(f"{e.id}\t{e.category or '-'}\t{e.label or '-'}\t{hashes}")
            n += 1
        print(f"({n} shown of {len(lib)})", file=sys.stderr)
    return 0


def _remove(args: argparse.Namespace) -> int:
    from fingerprints.library import Library

    total = 0
    try:
        with Library(_db(args)) as lib:
            for ident in args.ids:
                n = lib.remove(ident)
                if not n:
                    print(f"tapsift: {ident}: not in the library", file=sys.stderr)
                total += n
    except ValueError as exc:
        return _err(str(exc))
    print(f"{total} removed")
    return 0 if total else 1


def _export(args: argparse.Namespace) -> int:
    from fingerprints.library import Library

    with Library(_db(args), readonly=True) as lib:
        out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout  # noqa: SIM115
        try:
            if args.format == "csv":
                n = lib.export_csv(out)
            else:
                n = lib.export_hashes(out, args.algorithm, with_label=args.with_label)
        finally:
            if out is not sys.stdout:
                out.close()
    print(f"{n} exported", file=sys.stderr)
    return 0


def _stats(args: argparse.Namespace) -> int:
    from fingerprints.library import Library

    with Library(_db(args), readonly=True) as lib:
        print(f"{_db(args)}: {len(lib)} entries; " + ", ".join(f"{a} {n}" for a, n in lib.counts().items()))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("fingerprint", help="the fingerprint library (exact and perceptual hashes)")
    p.add_argument("--db", help=f"library file (default $TAPSIFT_FINGERPRINTS or {DEFAULT_DB})")
    ps = p.add_subparsers(dest="fingerprint_command", required=True, metavar="ACTION")

    def meta(x: argparse.ArgumentParser) -> None:
        x.add_argument("--label", default="", help="label (default: the file name, or the text after a hash)")
        x.add_argument("--category", default="", help="category, e.g. pornographic, malware-hosting")
        x.add_argument("--source", default="", help="where the fingerprints come from")

    a = ps.add_parser("add", help="hash files (and images perceptually) or add given hashes")
    a.add_argument("files", nargs="*")
    a.add_argument("--hash", action="append", help="a hash to add (repeatable)")
    a.add_argument("--algorithm", choices=("md5", "sha256", "phash", "dhash", "pdq"))
    a.add_argument("--pdq", action="store_true", help="also compute PDQ (needs the pdqhash package)")
    meta(a)
    a.set_defaults(func=_add)

    i = ps.add_parser("import", help="import a hash list, a CSV, a directory or another library")
    i.add_argument("source_path", metavar="SOURCE")
    i.add_argument("--format", choices=("hashes", "csv", "dir", "library"), help="default: guessed")
    i.add_argument("--algorithm", choices=("md5", "sha256", "phash", "dhash", "pdq"),
                   help="hash lists: the algorithm (default: by length; 16 hex digits = phash)")
    i.add_argument("--images-only", action="store_true", help="directories: skip files that are not images")
    i.add_argument("--pdq", action="store_true", help="directories: also compute PDQ")
    meta(i)
    i.set_defaults(func=_import)

    ls = ps.add_parser("list", help="list entries")
    ls.add_argument("--algorithm", choices=("md5", "sha256", "phash", "dhash", "pdq"))
    ls.add_argument("--category")
    ls.add_argument("--label", help="label contains")
    ls.add_argument("--limit", type=int, default=100)
    ls.add_argument("--all", action="store_true", help="show every hash, not only md5 and phash")
    ls.set_defaults(func=_list)

    r = ps.add_parser("remove", help="remove entries by id or by hash")
    r.add_argument("ids", nargs="+", metavar="ID|HASH")
    r.set_defaults(func=_remove)

    e = ps.add_parser("export", help="export a hash list (one per line) or CSV")
    e.add_argument("--format", choices=("hashes", "csv"), default="hashes")
    e.add_argument("--algorithm", choices=("md5", "sha256", "phash", "dhash", "pdq"), default="md5")
    e.add_argument("--with-label", action="store_true", help="hash lists: 'hash<TAB>label'")
    e.add_argument("-o", "--output")
    e.set_defaults(func=_export)

    s = ps.add_parser("stats", help="entries per algorithm")
    s.set_defaults(func=_stats)
