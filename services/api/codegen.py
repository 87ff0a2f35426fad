"""Generate Python messages, gRPC stubs and mypy stubs from proto/.

One script with pinned grpcio-tools and mypy-protobuf produces everything
under services/api/gen, so the committed code is reproducible; a test
regenerates into a temporary folder and compares (tests/unit/api).

protoc names Python modules after the proto paths (``kybernetes.core.v1``);
we rewrite those imports to live under ``services.api.gen`` so that the
generated tree is an ordinary subpackage instead of a second top-level one.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "proto"
DEFAULT_OUT = REPO / "services" / "api" / "gen"
GEN_PACKAGE = "services.api.gen"

_IMPORT = re.compile(r"^(from|import) kybernetes\.", re.MULTILINE)


def _rewrite_imports(text: str) -> str:
    return _IMPORT.sub(lambda m: f"{m.group(1)} {GEN_PACKAGE}.kybernetes.", text)


def generate(out: pathlib.Path) -> list[pathlib.Path]:
    """Generate into ``out`` (emptied first); return the files written."""
    from grpc_tools import protoc  # dev dependency: only needed to regenerate

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    # protoc finds the mypy plugins on PATH: put this interpreter's scripts first.
    scripts = str(pathlib.Path(sys.executable).parent)
    os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written = []
    for path in sorted(out.rglob("*.py*")):
        path.write_text(_rewrite_imports(path.read_text()))
        written.append(path)
    for folder in [out, *(p for p in out.rglob("*") if p.is_dir())]:
        init = folder / "__init__.py"
        if not init.exists():
            init.write_text("")
            written.append(init)
    (out / "py.typed").write_text("")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT,
                        help="output folder (default: %(default)s)")
    opts = parser.parse_args(argv)
    files = generate(opts.out)
    print(f"generated {len(files)} files in {opts.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
