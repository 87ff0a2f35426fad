"""Container environment and ``$(VAR)`` expansion, as Kubernetes does it.

Kubernetes (third_party/forked/golang/expansion) expands ``$(NAME)`` in env
values, command and args from the variables defined so far; ``$$`` is an
escaped ``$``; a reference to an unknown variable, or one left unclosed,
stays as written. That last rule is why this is not ``string.Template`` or
``os.path.expandvars``: a literal ``$(date)`` meant for a shell must reach
the container untouched.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")


def expand(text: str, variables: Mapping[str, str] | Callable[[str], str | None]) -> str:
    """``text`` with every ``$(NAME)`` replaced by its value.

    ``variables`` is a mapping or a lookup function returning None for an
    unknown name (which is left as ``$(NAME)``).
    """
    lookup = variables if callable(variables) else variables.get
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    n = len(text)
    while cursor < n:
        if text[cursor] == "$" and cursor + 1 < n:
            out.append(text[checkpoint:cursor])
            nxt = text[cursor + 1]
            advance = 1
            if nxt == "$":
                out.append("$")
            elif nxt == "(":
                close = text.find(")", cursor + 2)
                if close < 0:
                    out.append("$(")
                else:
                    name = text[cursor + 2:close]
                    value = lookup(name)
                    out.append(f"$({name})" if value is None else value)
                    advance = close - cursor
            else:
                out.append("$" + nxt)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


def field_ref_value(pod: Any, field_path: str, *, host_ip: str = "", pod_ip: str = "") -> str:
    """The value of a ``valueFrom.fieldRef`` (the downward API's fields)."""
    meta = pod.metadata
    simple = {
        "metadata.name": lambda: meta.name,
        "metadata.namespace": lambda: meta.namespace,
        "metadata.uid": lambda: meta.uid,
        "spec.nodeName": lambda: pod.spec.node_name,
        "spec.serviceAccountName": lambda: pod.spec.service_account_name,
        "status.hostIP": lambda: host_ip,
        "status.hostIPs": lambda: host_ip,
        "status.podIP": lambda: pod_ip,
        "status.podIPs": lambda: pod_ip,
    }
    if field_path in simple:
        return simple[field_path]()
    m = _SUBSCRIPT.match(field_path)
    if m:
        source = meta.labels if m.group(1) == "labels" else meta.annotations
        return source.get(m.group(2), "")
    raise ValueError(f"unsupported fieldRef {field_path!r}")


def container_env(pod: Any, container: Any, *, host_ip: str = "",
                  pod_ip: str = "") -> dict[str, str]:
    """The container's environment in declaration order: literal values
    expanded against the variables defined before them, ``fieldRef`` values
    taken from the pod as they are (never expanded)."""
    env: dict[str, str] = {}
    for var in container.env:
        if var.HasField("value_from") and var.value_from.HasField("field_ref"):
            env[var.name] = field_ref_value(pod, var.value_from.field_ref.field_path,
                                            host_ip=host_ip, pod_ip=pod_ip)
        else:
            env[var.name] = expand(var.value, env) if var.value else ""
    return env


def expand_all(items: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """Expand each of a command's or args' items."""
    return [expand(item, env) for item in items]


__all__ = ["container_env", "expand", "expand_all", "field_ref_value"]
