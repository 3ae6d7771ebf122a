"""Checking config nodes against the signatures of the classes they configure.

Every Hydra node with a ``_target_`` is checked against that class's constructor: an unknown key
is an error listing the allowed ones, and a value whose type does not fit a simple annotation
(int, float, bool, str, their Optional/Union, lists and dicts) is an error naming the expected
type. The constructor is the schema, so the two can never drift apart.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Union

from hydra.utils import get_class
from omegaconf import DictConfig, ListConfig, OmegaConf

from segattn.values import is_int, is_number

_SIMPLE = (bool, int, float, str)


def describe(annotation: Any) -> str:
    """A short human name for a type annotation."""
    if annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(annotation))
    if origin is not None:
        return {list: "a list", tuple: "a list", dict: "a mapping"}.get(
            origin, getattr(origin, "__name__", str(origin))
        )
    return getattr(annotation, "__name__", str(annotation))


def value_fits(value: Any, annotation: Any) -> bool:
    """True when ``value`` (a plain Python value) fits ``annotation``, or the annotation is too
    complex to judge (then the class itself will complain)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    if annotation is type(None):
        return value is None
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(value_fits(value, a) for a in typing.get_args(annotation))
    if origin in (list, tuple, Sequence, typing.Sequence) or annotation in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin in (dict, Mapping, typing.Mapping) or annotation is dict:
        return isinstance(value, dict)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return is_int(value)
    if annotation is float:
        return is_number(value)
    if annotation is str:
        return isinstance(value, str)
    return True  # objects (e.g. transforms) and other annotations: not judged here


def _own_signature(fn: Any) -> tuple[dict[str, inspect.Parameter], dict[str, Any], bool]:
    params = dict(inspect.signature(fn).parameters)
    params.pop("self", None)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to no type checks
        hints = {}
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    params = {
        n: p
        for n, p in params.items()
        if p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    }
    return params, hints, var_kw


def signature_of(target: Any) -> tuple[dict[str, inspect.Parameter], dict[str, Any], bool]:
    """Parameters, resolved annotations and whether ``**kwargs`` is accepted, for a class or function.

    A class whose ``__init__`` takes ``**kwargs`` passes them on to its base classes (as the data
    modules do), so their parameters are checked too: ``data.image_size=64.5`` is a type error
    here, not a traceback from deep inside the data pipeline.
    """
    if not inspect.isclass(target):
        return _own_signature(target)
    params: dict[str, inspect.Parameter] = {}
    hints: dict[str, Any] = {}
    var_kw = True
    for cls in inspect.getmro(target):
        if "__init__" not in cls.__dict__ or cls is object:
            continue
        own, own_hints, var_kw = _own_signature(cls.__dict__["__init__"])
        for name, param in own.items():
            params.setdefault(name, param)
            if name in own_hints:
                hints.setdefault(name, own_hints[name])
        if not var_kw:
            break
    return params, hints, var_kw


def check_against_signature(
    node: Mapping, where: str, target: Any, skip: Sequence[str] = (), filled: Sequence[str] = ()
) -> list[str]:
    """Problems of a config mapping checked against ``target``'s parameters.

    ``skip``: keys not checked (filled or handled elsewhere). ``filled``: parameters that the program
    passes itself, so the config must not set them.
    """
    params, hints, var_kw = signature_of(target)
    allowed = sorted(set(params) - set(filled))
    problems = []
    for key, value in node.items():
        if key in ("_target_", "_partial_", "_convert_", "_recursive_", "_args_") or key in skip:
            continue
        path = f"{where}.{key}"
        if key not in params or key in filled:
            if not var_kw or key in filled:
                problems.append(f"{path}: unknown key; allowed keys: {', '.join(allowed)}")
            continue
        if isinstance(value, Mapping) and "_target_" in value:
            continue  # an object built by Hydra (e.g. an albumentations pipeline), checked where it is built
        annotation = hints.get(key, params[key].annotation)
        if not value_fits(value, annotation):
            problems.append(f"{path}: got {value!r} ({type(value).__name__}); expected {describe(annotation)}")
    return problems


def check_target_node(
    node: DictConfig | Mapping, where: str, skip: Sequence[str] = (), filled: Sequence[str] = ()
) -> list[str]:
    """Check a Hydra node with ``_target_`` against the target's constructor."""
    plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, (DictConfig, ListConfig)) else dict(node)
    target_name = plain.get("_target_")
    if not isinstance(target_name, str):
        return [f"{where}._target_: missing; expected the dotted path of the class to build"]
    try:
        target = get_class(target_name)
    except Exception as err:  # noqa: BLE001 - any import problem is a config problem here
        return [f"{where}._target_: cannot import {target_name!r} ({err})"]
    return check_against_signature(plain, where, target, skip=skip, filled=filled)
