"""Records as real dataclasses; signatures that show the real defaults.

What uniffi 0.32.2 generates, and why it is completed here at import:

- Each record is decorated with `@dataclass` but declares no field: the class
  has no annotations, only an `__init__` that sets the attributes. So
  dataclasses sees a record without fields: `repr(cb)` is `Callback()`,
  `dataclasses.asdict(cb)` is `{}`, `pandas.DataFrame(records)` has no
  columns. Its `__eq__` reads the other side's fields, so `cb == None` raised
  AttributeError.
- An optional parameter's default is uniffi's private sentinel `_DEFAULT`
  (an `object()`), which the generated body replaces with the real default,
  so `help()` showed `claim_token=<object object at 0x...>`.
- An object (Store, Organization, ManualClock, Claim) is a handle to a Rust
  value that the Python object frees when it dies. `copy.deepcopy` copied the
  handle, so the copy freed the value under the original (use after free);
  `dataclasses.asdict` deep-copies, and `StoreOptions.clock` is an object.

The generated file is not edited (it is regenerated on every build, and the
team does not patch it): `install` reads what the generated classes declare
and completes them in place, so the generated converters, which construct
the classes by name, build the completed ones.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from types import ModuleType
from typing import Any, Callable, Dict, List

# The union uniffi writes so that a type checker admits its sentinel:
# `typing.Union[object, typing.Optional[str]]` is `typing.Optional[str]`.
_SENTINEL_UNION = re.compile(r"^typing\.Union\[object, (.*)\]$")


def install(native: ModuleType) -> None:
    sentinel = getattr(native, "_DEFAULT")
    for cls in _classes(native):
        if dataclasses.is_dataclass(cls):
            _declare_fields(cls, sentinel)
        elif hasattr(cls, "_uniffi_clone_handle"):
            _copies_are_the_object(cls)
        for value in list(vars(cls).values()):
            func = getattr(value, "__func__", value)  # classmethod, staticmethod
            if inspect.isfunction(func):
                _show_real_defaults(func, sentinel)
    for value in list(vars(native).values()):
        if inspect.isfunction(value) and value.__module__ == native.__name__:
            _show_real_defaults(value, sentinel)


def _classes(native: ModuleType) -> List[type]:
    return [
        v for v in vars(native).values() if isinstance(v, type) and v.__module__ == native.__name__
    ]


def _declare_fields(cls: type, sentinel: object) -> None:
    """The record's fields are its generated `__init__`'s parameters (name,
    annotation, real default); the class becomes a dataclass again with them.
    `init=False` keeps the generated `__init__`; `repr` and `__eq__` are
    dataclasses' (equal when the type and every field are)."""
    init = vars(cls)["__init__"]
    _show_real_defaults(init, sentinel)
    annotations: Dict[str, Any] = {}
    for p in list(inspect.signature(init).parameters.values())[1:]:  # after self
        annotations[p.name] = p.annotation
        if p.default is not inspect.Parameter.empty:
            # Every default is None today. A list or dict one would make
            # dataclasses refuse the class at import (it wants a factory):
            # loud, and caught by tests/test_pythonic.py.
            setattr(cls, p.name, p.default)
    setattr(cls, "__annotations__", annotations)
    # The zero-field __repr__ of the generated @dataclass, and uniffi's own
    # __eq__ and __str__, would otherwise stay (dataclasses never replaces a
    # method the class defines). str(record) is its repr, as for a dataclass.
    for name in ("__repr__", "__eq__", "__str__"):
        if name in vars(cls):
            delattr(cls, name)
    dataclasses.dataclass(init=False, repr=True, eq=True)(cls)


def _copies_are_the_object(cls: type) -> None:
    """A copy of a handle is the same object (a handle is a reference), as
    `copy` treats functions and classes: never a second owner of the handle."""

    def __copy__(self: object) -> object:
        return self

    def __deepcopy__(self: object, memo: Dict[int, Any]) -> object:
        return self

    for method in (__copy__, __deepcopy__):
        method.__qualname__ = f"{cls.__qualname__}.{method.__name__}"
        setattr(cls, method.__name__, method)


def _show_real_defaults(func: Callable[..., Any], sentinel: object) -> None:
    """Gives `func` a `__signature__` whose defaults are the ones its body
    puts in place of the sentinel (`if name is _DEFAULT: name = None`). A
    default that cannot be read stays the sentinel: tests/test_pythonic.py
    fails on any exported signature that still shows one."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return
    if not any(p.default is sentinel for p in sig.parameters.values()):
        return
    defaults = _defaults_in_body(func)
    params = []
    for p in sig.parameters.values():
        if p.default is sentinel and p.name in defaults:
            annotation = p.annotation
            if isinstance(annotation, str):
                annotation = _SENTINEL_UNION.sub(r"\1", annotation)
            p = p.replace(default=defaults[p.name], annotation=annotation)
        params.append(p)
    setattr(func, "__signature__", sig.replace(parameters=params))


def _defaults_in_body(func: Callable[..., Any]) -> Dict[str, Any]:
    """`{name: value}` for each `if name is _DEFAULT:` whose first statement
    assigns `name` (or `self.name`); the value is the generated expression,
    evaluated in the generated module, as the body itself would."""
    try:
        source = inspect.getsource(func)
        # A method's source is indented; not dedented, because the generated
        # docstrings end at column 0: parsed as the body of an `if`.
        tree = ast.parse("if 1:\n" + source if source[:1].isspace() else source)
    except (OSError, TypeError, SyntaxError):  # no source to read
        return {}
    found: Dict[str, Any] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)):
            continue
        test = node.test
        is_sentinel = (
            isinstance(test.left, ast.Name)
            and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Is)
            and isinstance(test.comparators[0], ast.Name)
            and test.comparators[0].id == "_DEFAULT"
        )
        first = node.body[0]
        if not (is_sentinel and isinstance(first, ast.Assign) and len(first.targets) == 1):
            continue
        target = first.targets[0]
        name = getattr(target, "id", None) or getattr(target, "attr", None)
        if isinstance(name, str) and name == getattr(test.left, "id", None):
            expression = compile(ast.Expression(first.value), "<uniffi default>", "eval")
            found[name] = eval(expression, getattr(func, "__globals__", {}))
    return found
