"""Controlling access, in Kubernetes' order: authentication → rate limit →
authorization → admission, each refusal with its own status (UNAUTHENTICATED,
RESOURCE_EXHAUSTED, PERMISSION_DENIED) and each written to the audit log.

The server builds one Attributes per request (from the RPC and the
decoded request) and asks :meth:`AccessControl.check`; the request's
outcome, whatever it is, is recorded by :meth:`AccessControl.finish`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from services.api import kinds
from services.apiserver import audit, errors
from services.apiserver.authn import Authenticator
from services.apiserver.authz.attributes import Attributes, Decision, UserInfo
from services.apiserver.limits import RequestRateLimiter, WatchCounter

Authorize = Callable[[Attributes], Decision]
# (attributes, the request's object or None, the stored object or None) -> refusal or None
Admit = Callable[[Attributes, Message | None, Message | None], str | None]

# How each RPC reads in authorization terms: method -> (verb, subresource).
METHOD_ATTRIBUTES: dict[str, tuple[str, str]] = {
    "Create": ("create", ""), "Get": ("get", ""), "List": ("list", ""),
    "Watch": ("watch", ""), "WatchBatched": ("watch", ""), "Update": ("update", ""),
    "UpdateStatus": ("update", "status"), "Delete": ("delete", ""),
    "Bind": ("create", "binding"), "Logs": ("get", "log"), "Exec": ("create", "exec"),
}


NOBODY = UserInfo("")


def always_allow(attrs: Attributes) -> Decision:
    return Decision(True, "AlwaysAllow")


def admit_everything(attrs: Attributes, obj: Message | None, old: Message | None) -> str | None:
    return None


def attributes_for(user: UserInfo, kind: kinds.Kind, method: str, request: Any) -> Attributes:
    """The Attributes of one call: namespace and name from the request
    (an object's metadata, or a Get/Delete/List/Watch/Logs/Exec request)."""
    verb, subresource = METHOD_ATTRIBUTES[method]
    meta = getattr(request, "metadata", None)
    if meta is not None and hasattr(meta, "namespace"):
        namespace, name = meta.namespace, meta.name
        if kind.namespaced and not namespace:
            namespace = "default"  # where the registry will put it
    else:
        namespace, name = getattr(request, "namespace", ""), getattr(request, "name", "")
    if not kind.namespaced:
        namespace = ""
    if verb in ("list", "watch"):
        name = ""
    return Attributes(user=user, verb=verb, group=kind.group, resource=kind.resource,
                      subresource=subresource, namespace=namespace, name=name)


def denial_message(attrs: Attributes, reason: str) -> str:
    """Kubernetes' Forbidden text, with the rule that decided."""
    named = f' "{attrs.name}"' if attrs.name else ""
    if reason.startswith(f'User "{attrs.user.name}" cannot'):  # RBAC's own full sentence
        return f"{attrs.resource_path}{named} is forbidden: {reason}"
    where = (f' in the namespace "{attrs.namespace}"' if attrs.namespace else
             " at the cluster scope")
    return (f'{attrs.resource_path}{named} is forbidden: User "{attrs.user.name}" cannot '
            f'{attrs.verb} resource "{attrs.resource_path}" in API group "{attrs.group}"'
            f"{where}: {reason}")


@dataclasses.dataclass
class Outcome:
    """What is known about one request as it goes through the pipeline."""

    method: str
    group: str = ""
    resource: str = ""
    peer: str = ""
    user: UserInfo | None = None
    attrs: Attributes | None = None
    decision: str = "allow"
    reason: str = ""


class AccessControl:
    """Authenticator, limits, authorizer, admission and audit log together."""

    def __init__(self, authenticator: Authenticator, *, authorize: Authorize = always_allow,
                 admit: Admit = admit_everything, audit_log: audit.AuditLog | None = None,
                 rate_limiter: RequestRateLimiter | None = None,
                 watches: WatchCounter | None = None):
        self.authenticator = authenticator
        self.authorize = authorize
        self.admit = admit
        self.audit_log = audit_log
        self.rate_limiter = rate_limiter or RequestRateLimiter(0, 1)
        self.watches = watches or WatchCounter(0)

    def authenticate(self, context: Any, outcome: Outcome) -> UserInfo:
        """Who is calling, and may they call now? (authn + rate limit)"""
        outcome.peer = context.peer() or ""
        try:
            user = self.authenticator.authenticate(context)
        except errors.ApiStatus as err:
            outcome.decision, outcome.reason = "unauthenticated", err.message
            raise
        outcome.user = user
        if not self.rate_limiter.allow(user):
            outcome.decision = "throttled"
            outcome.reason = f"more than {self.rate_limiter.qps:g} requests per second"
            raise errors.throttled(
                f'too many requests from user "{user.name}": the limit is '
                f"{self.rate_limiter.qps:g} per second (burst {self.rate_limiter.burst}); "
                "retry later")
        return user

    def authorize_request(self, attrs: Attributes, outcome: Outcome) -> None:
        outcome.attrs, outcome.user = attrs, attrs.user
        decision = self.authorize(attrs)
        if not decision.allowed:
            outcome.decision, outcome.reason = "forbid", decision.reason
            raise errors.forbidden(denial_message(attrs, decision.reason))
        outcome.reason = decision.reason

    def admit_request(self, attrs: Attributes, obj: Message | None, old: Message | None,
                      outcome: Outcome) -> None:
        refusal = self.admit(attrs, obj, old)
        if refusal:
            outcome.decision, outcome.reason = "reject", refusal
            raise errors.forbidden(f"{attrs.describe()} is forbidden: {refusal}")

    def open_watch(self, user: UserInfo, outcome: Outcome) -> None:
        if not self.watches.acquire(user):
            outcome.decision = "throttled"
            outcome.reason = f"more than {self.watches.limit} open watches"
            raise errors.throttled(
                f'too many watches open for user "{user.name}": the limit is '
                f"{self.watches.limit}; close some first")

    def finish(self, outcome: Outcome, code: str) -> None:
        """Record the request in the audit log if it is a refusal or a write."""
        if self.audit_log is None:
            return
        decision = outcome.decision
        if decision == "allow" and outcome.attrs is None:
            return  # refused before it meant anything (e.g. undecodable bytes)
        if audit.should_record(decision, outcome.attrs):
            attrs = outcome.attrs
            if attrs is None:  # refused before the request was read: what the RPC says
                verb = METHOD_ATTRIBUTES.get(outcome.method, ("", ""))
                attrs = Attributes(user=outcome.user or NOBODY, verb=verb[0],
                                   group=outcome.group, resource=outcome.resource,
                                   subresource=verb[1])
            self.audit_log.write(audit.event(outcome.user, attrs, decision, code,
                                             outcome.reason, outcome.peer, outcome.method))
