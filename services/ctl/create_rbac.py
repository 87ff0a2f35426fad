"""``kyb create role|clusterrole|rolebinding|clusterrolebinding|quota``:
kubectl's imperative forms, for scripts that grant access without writing
a manifest.

The builders are pure (flags in, message out) so they are tested without a
server; ``--dry-run=client -o yaml`` prints the object instead of creating
it, as kubectl does, which also makes a quick manifest generator.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from google.protobuf.message import Message

from services.api import kinds
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.gen.kybernetes.rbac.v1 import types_pb2 as rbac
from services.ctl import printers, resources
from services.ctl.context import CommandError, Context

RBAC_GROUP = "rbac.authorization.k8s.io"

# kubectl create role's accepted verbs.
VALID_VERBS = ("*", "get", "list", "watch", "create", "update", "patch", "delete",
               "deletecollection", "use", "bind", "escalate", "impersonate")


def register(kinds_parsers: argparse._SubParsersAction,
             parent: argparse.ArgumentParser) -> None:
    """Add the subcommands to ``kyb create``'s KIND parsers."""
    for name, cluster in (("role", False), ("clusterrole", True)):
        parser = kinds_parsers.add_parser(
            name, parents=[parent], help=f"create a {'Cluster' if cluster else ''}Role",
            description=f"Create a {'ClusterRole' if cluster else 'Role'} granting --verb "
                        "on --resource (RESOURCE[.GROUP][/SUBRESOURCE], e.g. pods, "
                        "deployments.apps, pods/log), optionally only --resource-name."
                        + (" --non-resource-url grants URLs such as /metrics." if cluster
                           else ""))
        parser.add_argument("name", metavar="NAME")
        parser.add_argument("--verb", action="append", default=[], metavar="VERB[,VERB]",
                            help="get, list, watch, create, update, delete or * (repeatable)")
        parser.add_argument("--resource", action="append", default=[],
                            metavar="RESOURCE[,RESOURCE]", help="what the verbs apply to "
                                                                "(repeatable)")
        parser.add_argument("--resource-name", action="append", default=[], metavar="NAME",
                            help="only these objects (repeatable)")
        if cluster:
            parser.add_argument("--non-resource-url", action="append", default=[],
                                metavar="URL", help="a URL path such as /metrics (repeatable)")
        _output_flags(parser)
        parser.set_defaults(run=run_create_role, cluster=cluster)
    for name, cluster in (("rolebinding", False), ("clusterrolebinding", True)):
        parser = kinds_parsers.add_parser(
            name, parents=[parent], help=f"create a {'Cluster' if cluster else ''}RoleBinding",
            description=f"Grant a {'ClusterRole' if cluster else 'Role or ClusterRole'} to "
                        "users, groups and service accounts"
                        + ("." if cluster else " in one namespace."))
        parser.add_argument("name", metavar="NAME")
        parser.add_argument("--clusterrole", default="", metavar="NAME",
                            help="the ClusterRole to grant")
        if not cluster:
            parser.add_argument("--role", default="", metavar="NAME",
                                help="the Role (in this namespace) to grant")
        parser.add_argument("--user", action="append", default=[], metavar="USER",
                            help="a user to grant it to (repeatable)")
        parser.add_argument("--group", action="append", default=[], metavar="GROUP",
                            help="a group to grant it to (repeatable)")
        parser.add_argument("--serviceaccount", action="append", default=[],
                            metavar="NAMESPACE:NAME",
                            help="a service account to grant it to (repeatable)")
        _output_flags(parser)
        parser.set_defaults(run=run_create_binding, cluster=cluster)
    parser = kinds_parsers.add_parser(
        "quota", aliases=["resourcequota"], parents=[parent], help="create a ResourceQuota",
        description="Create a ResourceQuota: --hard=pods=10,requests.cpu=2,requests.memory=4Gi.")
    parser.add_argument("name", metavar="NAME")
    parser.add_argument("--hard", default="", metavar="RESOURCE=QUANTITY[,...]",
                        help="the limits: pods, cpu, memory, requests.cpu, requests.memory")
    _output_flags(parser)
    parser.set_defaults(run=run_create_quota)


def _output_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", choices=("none", "client"), default="none",
                        help="client: do not create; print what would be sent")
    parser.add_argument("-o", "--output", choices=("yaml", "json", "name"), metavar="FORMAT",
                        help="print the object (yaml, json or name) instead of "
                             "\"KIND/NAME created\"")


# --- pure builders ----------------------------------------------------------------------------


def _split(values: Sequence[str]) -> list[str]:
    """Repeated flags whose values may also be comma-separated."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _resource(text: str) -> tuple[str, str]:
    """(group, resource[/subresource]) for RESOURCE[.GROUP][/SUBRESOURCE];
    "*" is every resource of every group."""
    if text == "*":
        return "*", "*"
    type_part, _, sub = text.partition("/")
    resource, _, group = type_part.partition(".")
    try:
        kind = kinds.lookup(resource)
    except kinds.UnknownKindError:
        raise CommandError(f'the server doesn\'t have a resource type "{type_part}"') from None
    if group and group != kind.group:
        raise CommandError(f'the server doesn\'t have a resource type "{type_part}"')
    return kind.group, f"{kind.resource}/{sub}" if sub else kind.resource


def policy_rules(verbs: Sequence[str], resource_args: Sequence[str],
                 resource_names: Sequence[str] = (),
                 non_resource_urls: Sequence[str] = ()) -> list[rbac.PolicyRule]:
    """kubectl create role's rules: one per API group, holding that group's
    resources, every verb and the resource names; URLs in a rule of their own."""
    verb_list = _split(verbs)
    if not verb_list:
        raise CommandError("at least one verb must be specified")
    for verb in verb_list:
        if verb not in VALID_VERBS:
            raise CommandError(f"invalid verb: '{verb}'")
    names = _split(resource_names)
    urls = _split(non_resource_urls)
    by_group: dict[str, list[str]] = {}
    for text in _split(resource_args):
        group, resource = _resource(text)
        if resource not in by_group.setdefault(group, []):
            by_group[group].append(resource)
    if not by_group and not urls:
        raise CommandError("at least one resource must be specified")
    if names and not by_group:
        raise CommandError("--resource-name needs --resource")
    rules = [rbac.PolicyRule(verbs=verb_list, api_groups=[group], resources=listed,
                             resource_names=names) for group, listed in by_group.items()]
    if urls:
        rules.append(rbac.PolicyRule(verbs=verb_list, non_resource_urls=urls))
    return rules


def build_role(name: str, namespace: str, *, cluster: bool, verbs: Sequence[str],
               resource_args: Sequence[str], resource_names: Sequence[str] = (),
               non_resource_urls: Sequence[str] = ()) -> Message:
    role: Any = rbac.ClusterRole() if cluster else rbac.Role()
    role.api_version, role.kind = f"{RBAC_GROUP}/v1", "ClusterRole" if cluster else "Role"
    role.metadata.name = name
    if not cluster:
        role.metadata.namespace = namespace
    role.rules.extend(policy_rules(verbs, resource_args, resource_names, non_resource_urls))
    return role


def subjects(users: Sequence[str], groups: Sequence[str],
             service_accounts: Sequence[str]) -> list[rbac.Subject]:
    """Users, then groups, then service accounts given as NAMESPACE:NAME."""
    found = [rbac.Subject(kind="User", name=u, api_group=RBAC_GROUP) for u in users]
    found += [rbac.Subject(kind="Group", name=g, api_group=RBAC_GROUP) for g in groups]
    for text in service_accounts:
        namespace, sep, name = text.partition(":")
        if not sep or not namespace or not name:
            raise CommandError(f"serviceaccount must be <namespace>:<name>, got {text!r}")
        found.append(rbac.Subject(kind="ServiceAccount", name=name, namespace=namespace))
    return found


def build_binding(name: str, namespace: str, *, cluster: bool, role: str = "",
                  cluster_role: str = "", users: Sequence[str] = (),
                  groups: Sequence[str] = (), service_accounts: Sequence[str] = ()) -> Message:
    if bool(role) == bool(cluster_role):
        raise CommandError("exactly one of clusterrole or role must be specified"
                           if not cluster else "clusterrole must be specified")
    binding: Any = rbac.ClusterRoleBinding() if cluster else rbac.RoleBinding()
    binding.api_version = f"{RBAC_GROUP}/v1"
    binding.kind = "ClusterRoleBinding" if cluster else "RoleBinding"
    binding.metadata.name = name
    if not cluster:
        binding.metadata.namespace = namespace
    binding.role_ref.CopyFrom(rbac.RoleRef(api_group=RBAC_GROUP,
                                           kind="Role" if role else "ClusterRole",
                                           name=role or cluster_role))
    binding.subjects.extend(subjects(users, groups, service_accounts))
    return binding


def build_quota(name: str, namespace: str, hard: str) -> core.ResourceQuota:
    quota = core.ResourceQuota(api_version="v1", kind="ResourceQuota")
    quota.metadata.name, quota.metadata.namespace = name, namespace
    for pair in _split([hard]):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise CommandError(f"invalid argument {pair!r}: expected RESOURCE=QUANTITY")
        quota.spec.hard[key.strip()] = value.strip()
    return quota


# --- the commands ---------------------------------------------------------------------------


async def _create(ctx: Context, args: argparse.Namespace, obj: Message) -> int:
    kind = kinds.of_message(obj)
    if args.dry_run != "client":
        obj = await ctx.client.resource(kind).create(obj)
    if args.output in ("yaml", "json"):
        ctx.out.write(printers.structured([obj], args.output, single=True))
        ctx.out.flush()
    elif args.output == "name":
        ctx.print(printers.object_name(kind, obj))
    else:
        suffix = " (dry run)" if args.dry_run == "client" else ""
        ctx.print(f"{resources.qualified(kind)}/{obj.metadata.name} created{suffix}")
    return 0


async def run_create_role(ctx: Context, args: argparse.Namespace) -> int:
    kind = kinds.BY_KIND["ClusterRole" if args.cluster else "Role"]
    role = build_role(args.name, ctx.namespace_for(kind), cluster=args.cluster,
                      verbs=args.verb, resource_args=args.resource,
                      resource_names=args.resource_name,
                      non_resource_urls=getattr(args, "non_resource_url", []))
    return await _create(ctx, args, role)


async def run_create_binding(ctx: Context, args: argparse.Namespace) -> int:
    kind = kinds.BY_KIND["ClusterRoleBinding" if args.cluster else "RoleBinding"]
    binding = build_binding(args.name, ctx.namespace_for(kind), cluster=args.cluster,
                            role=getattr(args, "role", ""), cluster_role=args.clusterrole,
                            users=args.user, groups=args.group,
                            service_accounts=args.serviceaccount)
    return await _create(ctx, args, binding)


async def run_create_quota(ctx: Context, args: argparse.Namespace) -> int:
    quota = build_quota(args.name, ctx.namespace_for(kinds.BY_KIND["ResourceQuota"]), args.hard)
    return await _create(ctx, args, quota)


__all__ = ["register", "policy_rules", "build_role", "build_binding", "build_quota",
           "subjects"]
