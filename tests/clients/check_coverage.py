"""Checks that each generated client covers every operationId and every
component schema of openapi.yaml (parsed here, not listed by hand).

    python check_coverage.py openapi.yaml PY_PACKAGE_DIR TS_SCHEMA_D_TS GEN_PACKAGE_DIR

- openapi-python-client: one module per operation (`api/<tag>/<snake>.py`)
  and one model module per object or enum schema (`models/<snake>.py`).
- openapi-typescript: `operations` has every operationId, `paths` every
  path, `components.schemas` every schema.
- openapi-generator (python): one method per operation in `api/*.py`, one
  model module per object or enum schema.
Exits non-zero naming what a client lacks.
"""

import re
import sys
from pathlib import Path

from ruamel.yaml import YAML


def snake(name):
    """openapi-python-client's and openapi-generator's module names."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


spec = YAML(typ="safe").load(Path(sys.argv[1]).read_text())
py_dir, ts_file, gen_dir = Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
methods = {"get", "put", "post", "delete", "patch", "head", "options"}
operations = {
    op["operationId"]: path
    for path, item in spec["paths"].items()
    for method, op in item.items()
    if method in methods
}
schemas = spec["components"]["schemas"]
# The schemas a client makes a type of its own: objects with properties
# and enums (plain strings, integers, arrays and free-form objects are
# inlined where they are used).
modelled = {
    name for name, schema in schemas.items()
    if (schema.get("type") == "object" and "properties" in schema) or "enum" in schema
}
missing = []

py_ops = {p.stem for p in py_dir.glob("api/*/*.py")}
py_models = {p.stem for p in py_dir.glob("models/*.py")}
missing += [f"openapi-python-client: operation {op}" for op in operations if snake(op) not in py_ops]
missing += [f"openapi-python-client: model {m}" for m in modelled if snake(m) not in py_models]
missing += ["openapi-python-client: model ErrorCode"] * ("error_code" not in py_models)

ts = ts_file.read_text()


def ts_block(name):
    """The body of `export interface NAME {` … its closing `}` at column 0."""
    match = re.search(r"^export interface %s \{\n(.*?)^\}" % name, ts, re.S | re.M)
    return match.group(1) if match else ""


ts_ops = set(re.findall(r"^    (\w+): \{", ts_block("operations"), re.M))
ts_paths = set(re.findall(r'^    "([^"]+)": \{', ts_block("paths"), re.M))
ts_schemas = set(re.findall(r"^        (\w+):", ts_block("components").split("\n    responses:")[0], re.M))
missing += [f"openapi-typescript: operation {op}" for op in operations if op not in ts_ops]
missing += [f"openapi-typescript: path {p}" for p in set(operations.values()) if p not in ts_paths]
missing += [f"openapi-typescript: schema {s}" for s in schemas if s not in ts_schemas]

gen_api = "\n".join(p.read_text() for p in gen_dir.glob("api/*.py"))
gen_models = {p.stem for p in gen_dir.glob("models/*.py")}
missing += [f"openapi-generator: operation {op}" for op in operations
            if not re.search(r"^    def %s\(" % snake(op), gen_api, re.M)]
missing += [f"openapi-generator: model {m}" for m in modelled if snake(m) not in gen_models]

if missing:
    print("the generated clients lack:\n  " + "\n  ".join(sorted(missing)), file=sys.stderr)
    sys.exit(1)
print(f"every client covers the {len(operations)} operations; "
      f"{len(modelled)} object and enum schemas are models in both Python clients, "
      f"all {len(schemas)} schemas are TypeScript types")
