"""``kyb auth can-i`` and ``kyb auth whoami``: ask the API server's
Authorization service what a user may do, and who the caller is.

The question is asked, never tried: the server runs the same authorizers
(RBAC, then Node) it runs for real requests and answers in the status, so
``can-i`` agrees with what the real call would do. Parsing the question
and printing the answer are pure (:func:`review_request`,
:func:`answer_line`, :func:`whoami_table`); the commands are thin shells.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from typing import Any

import grpc

from services.api import kinds
from services.api.gen.kybernetes.authorization.v1 import authorization_pb2 as authz
from services.api.gen.kybernetes.authorization.v1.authorization_pb2_grpc import AuthorizationStub
from services.ctl import printers, tabwriter
from services.ctl.context import DEFAULT_NAMESPACE, CommandError, Context
from services.machinery.errors import from_rpc_error

# kubectl's known verbs; another is asked about all the same, with a warning.
KNOWN_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete",
               "deletecollection", "use", "bind", "impersonate", "escalate", "approve", "sign",
               "*")

# kubectl's known verbs of non-resource URLs (lowercase HTTP methods).
NON_RESOURCE_VERBS = ("get", "put", "post", "head", "options", "delete", "patch", "*")

# Subresources: "pods/log" asks about the log; "pods/web" (kubectl's
# TYPE/NAME) about the pod named web.
SUBRESOURCES = ("status", "binding", "log", "exec", "scale", "eviction", "attach",
                "portforward", "proxy", "ephemeralcontainers")


def register(subparsers: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "auth", parents=[parent], help="inspect authorization",
        description="Ask the API server what you (or another user) may do, and who you are.")
    commands = parser.add_subparsers(dest="auth_command", metavar="COMMAND")
    commands.required = True
    can_i = commands.add_parser(
        "can-i", parents=[parent], help="check whether an action is allowed",
        description="Whether VERB on RESOURCE is allowed: prints yes (exit 0) or no (exit 1). "
                    "RESOURCE is any kubectl name (pods, po, deployments.apps) or '*', "
                    "optionally with a subresource (pods/log, pods/status) or, as in kubectl, "
                    "an object's name (pods/web); or a non-resource URL starting with / "
                    "(kyb auth can-i get /metrics).")
    can_i.add_argument("verb", metavar="VERB",
                       help="get, list, watch, create, update, delete (or '*'); for a URL, "
                            "the lowercase HTTP method")
    can_i.add_argument("resource", metavar="RESOURCE[/SUBRESOURCE]|/URL")
    can_i.add_argument("name", nargs="?", default="", metavar="NAME",
                       help="one object's name (default: any)")
    can_i.add_argument("--subresource", default="", metavar="SUBRESOURCE",
                       help="a subresource such as log, status, exec, binding")
    can_i.add_argument("-A", "--all-namespaces", action="store_true",
                       help="ask about every namespace at once")
    can_i.add_argument("--as", dest="as_user", default="", metavar="USER",
                       help="ask about this user instead of yourself (needs the right to "
                            "review others: system:masters has it)")
    can_i.add_argument("--as-group", dest="as_groups", action="append", default=[],
                       metavar="GROUP", help="a group of the --as user (repeatable)")
    can_i.add_argument("-q", "--quiet", action="store_true",
                       help="print nothing: the exit status is the answer")
    can_i.add_argument("-v", "--verbose", action="store_true",
                       help="print the server's reason after the answer (yes - <reason>)")
    can_i.set_defaults(run=run_can_i)
    whoami = commands.add_parser(
        "whoami", parents=[parent], help="show who the API server takes you for",
        description="Your user name and groups, as the API server authenticated you.")
    whoami.add_argument("-o", "--output", choices=("json", "yaml"), metavar="FORMAT",
                        help="json or yaml (default: a table)")
    whoami.set_defaults(run=run_whoami)


# --- pure: the question and the answer --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Question:
    """A SubjectAccessReview to send, and the warnings to print first."""

    review: authz.SubjectAccessReview
    warnings: tuple[str, ...] = ()


def _resolve(type_arg: str) -> tuple[kinds.Kind | None, str, str]:
    """(kind or None, group, plural) for a kubectl resource type; an
    unknown type is asked about as written (``widgets.example.com``)."""
    text = type_arg.strip().lower()
    if text == "*":
        return None, "", "*"
    resource, _, group = text.partition(".")
    try:
        kind = kinds.lookup(resource)
    except kinds.UnknownKindError:
        return None, group, resource
    if group and group != kind.group:
        return None, group, resource
    return kind, kind.group, kind.resource


def review_request(verb: str, resource_arg: str, name: str = "", *, subresource: str = "",
                   namespace: str | None = None, all_namespaces: bool = False,
                   user: str = "", groups: Sequence[str] = ()) -> Question:
    """The review for ``kyb auth can-i VERB RESOURCE [NAME]`` (or ``VERB /URL``).

    ``namespace`` is -n (None: the default namespace). A cluster-scoped kind
    is asked about with no namespace, as its real requests carry none, so
    the answer agrees with them. Raises CommandError for a question that
    cannot be asked."""
    warnings: list[str] = []
    verb = verb.strip()
    if not verb:
        raise CommandError("you must specify a verb")
    if groups and not user:
        raise CommandError("--as-group needs --as (the user whose groups they are)")
    if resource_arg.startswith("/"):
        return _non_resource_request(verb, resource_arg, name, subresource, user, groups)
    if verb not in KNOWN_VERBS:
        warnings.append(f"Warning: verb '{verb}' is not a known verb")
    type_arg, slash, tail = resource_arg.partition("/")
    if not type_arg:
        raise CommandError(f"no resource type in {resource_arg!r}")
    if slash:
        if not tail or "/" in tail:
            raise CommandError(f"{resource_arg!r} is not RESOURCE/SUBRESOURCE or TYPE/NAME")
        if tail in SUBRESOURCES:
            if subresource and subresource != tail:
                raise CommandError(f"two subresources given: {tail} and {subresource}")
            subresource = tail
        elif name:
            raise CommandError(f"two names given: {tail} and {name}")
        else:
            name = tail
    kind, group, plural = _resolve(type_arg)
    if kind is None and plural != "*":
        where = f" in group '{group}'" if group else ""
        warnings.append(f"Warning: the server doesn't have a resource type '{plural}'{where}")
    if all_namespaces or (kind is not None and not kind.namespaced):
        ns = ""
    else:
        ns = namespace or DEFAULT_NAMESPACE
    attributes = authz.ResourceAttributes(namespace=ns, verb=verb, group=group,
                                          resource=plural, subresource=subresource, name=name)
    review = authz.SubjectAccessReview(resource_attributes=attributes, user=user,
                                       groups=list(groups))
    return Question(review, tuple(warnings))


def _non_resource_request(verb: str, url: str, name: str, subresource: str, user: str,
                          groups: Sequence[str]) -> Question:
    """``kyb auth can-i get /metrics``: a path, as kubectl asks about
    nonResourceURLs (no namespace, name or subresource)."""
    if subresource:
        raise CommandError("--subresource cannot be used with a non-resource URL")
    if name:
        raise CommandError(f"a non-resource URL ({url}) takes no name")
    warnings = []
    if verb not in NON_RESOURCE_VERBS:
        warnings.append(f"Warning: verb '{verb}' is not a known verb")
    review = authz.SubjectAccessReview(
        non_resource_attributes=authz.NonResourceAttributes(path=url, verb=verb),
        user=user, groups=list(groups))
    return Question(review, tuple(warnings))


def answer_line(status: authz.SubjectAccessReviewStatus, *, verbose: bool = False) -> str:
    """``yes`` or ``no``; with ``verbose``, `` - <reason>`` when there is one."""
    text = "yes" if status.allowed else "no"
    if verbose and status.reason:
        text += f" - {' '.join(status.reason.split())}"
    return text


def whoami_table(info: authz.UserInfo) -> list[str]:
    """kubectl auth whoami's table (ATTRIBUTE / VALUE)."""
    rows = [["Username", info.username], ["Groups", "[" + " ".join(info.groups) + "]"]]
    if info.authenticated_by:
        rows.append(["Authenticated by", info.authenticated_by])
    return tabwriter.table(["ATTRIBUTE", "VALUE"], rows)


def whoami_object(info: authz.UserInfo) -> dict[str, Any]:
    """What kubectl auth whoami -o json|yaml prints: a SelfSubjectReview."""
    user: dict[str, Any] = {"username": info.username}
    if info.groups:
        user["groups"] = list(info.groups)
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
            "metadata": {"creationTimestamp": None}, "status": {"userInfo": user}}


# --- the commands ---------------------------------------------------------------------------


async def _call(ctx: Context, method: str, request: Any) -> Any:
    stub = AuthorizationStub(await ctx.client.ready_channel())
    try:
        return await getattr(stub, method)(request, timeout=ctx.client.timeout)
    except grpc.aio.AioRpcError as err:
        raise from_rpc_error(err) from None


async def run_can_i(ctx: Context, args: argparse.Namespace) -> int:
    question = review_request(args.verb, args.resource, args.name,
                              subresource=args.subresource, namespace=ctx.namespace,
                              all_namespaces=args.all_namespaces, user=args.as_user,
                              groups=args.as_groups)
    for warning in question.warnings:
        ctx.warn(warning)
    status = await _call(ctx, "Review", question.review)
    if not args.quiet:
        ctx.print(answer_line(status, verbose=args.verbose))
    return 0 if status.allowed else 1


async def run_whoami(ctx: Context, args: argparse.Namespace) -> int:
    info = await _call(ctx, "WhoAmI", authz.SelfSubjectReview())
    if args.output == "json":
        ctx.print(printers.dump_json(whoami_object(info)))
    elif args.output == "yaml":
        ctx.out.write(printers.dump_yaml(whoami_object(info)))
        ctx.out.flush()
    else:
        for line in whoami_table(info):
            ctx.print(line)
    return 0
