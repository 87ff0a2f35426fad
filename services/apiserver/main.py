"""kyb-apiserver: serves the Kybernetes API over gRPC, storing objects in etcd."""

from __future__ import annotations

import argparse
import asyncio
import logging
import pathlib
import signal
import sys

from services.apiserver import allocator, audit, authn
from services.apiserver.access import AccessControl
from services.apiserver.audit import AuditLog
from services.apiserver.authz import wiring
from services.apiserver.authz.attributes import AUTHENTICATED, Attributes, UserInfo
from services.apiserver.limits import RequestRateLimiter, WatchCounter
from services.apiserver.etcd_process import EtcdProcess
from services.apiserver.server import ApiServer
from services.apiserver.storage import Storage
from services.machinery import tlsconfig
from services.machinery.httpserver import HttpServer
from services.machinery.logs import install_task_dump, setup_logging

log = logging.getLogger("kyb-apiserver")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="kyb-apiserver", description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--bind-address", default="0.0.0.0", help="address to serve gRPC on")
    p.add_argument("--port", type=int, default=6443, help="gRPC port")
    p.add_argument("--metrics-port", type=int, default=8081,
                   help="HTTP port for /metrics, /healthz, /readyz (0: any free port)")
    p.add_argument("--data-dir", type=pathlib.Path, default=pathlib.Path("/var/lib/kyb-apiserver"),
                   help="state directory (the embedded etcd's data lives here)")
    p.add_argument("--etcd-servers", default="",
                   help="comma-separated etcd HOST:PORT endpoints; empty: start and supervise "
                        "a local etcd in --data-dir")
    p.add_argument("--embedded-etcd-port", type=int, default=2379,
                   help="client port of the embedded etcd (peer port is this + 1)")
    p.add_argument("--service-cluster-ip-range", default=allocator.DEFAULT_SERVICE_CIDR,
                   help="CIDR that Service ClusterIPs are allocated from")
    p.add_argument("--service-node-port-range", default="30000-32767",
                   help="range that NodePorts are allocated from")
    p.add_argument("--default-not-ready-toleration-seconds", type=int, default=300,
                   help="tolerationSeconds of the node.kubernetes.io/not-ready:NoExecute "
                        "toleration added to every pod that has none")
    p.add_argument("--default-unreachable-toleration-seconds", type=int, default=300,
                   help="tolerationSeconds of the node.kubernetes.io/unreachable:NoExecute "
                        "toleration added to every pod that has none")
    p.add_argument("--watch-cache-size", type=int, default=1024,
                   help="events of history kept per kind for resuming watches")
    p.add_argument("--watch-batch-window", type=float, default=0.02,
                   help="seconds WatchBatched waits after an event for more to send in the same "
                        "message (0: only what is already queued)")
    p.add_argument("--bookmark-interval", type=float, default=1.0,
                   help="seconds between etcd progress notifications, which become BOOKMARK "
                        "events, for the embedded etcd (with --etcd-servers, set etcd's "
                        "--experimental-watch-progress-notify-interval instead)")
    p.add_argument("--etcd-compaction-interval", type=float, default=300.0,
                   help="seconds between etcd compactions (0: never)")
    p.add_argument("--etcd-timeout", type=float, default=5.0, help="deadline of each etcd call")
    sec = p.add_argument_group("security")
    sec.add_argument("--tls-cert-file", default="",
                     help="serving certificate (PEM) for --port, --token-port and the metrics "
                          "port; with --tls-private-key-file and --client-ca-file it turns on "
                          "mutual TLS")
    sec.add_argument("--tls-private-key-file", default="", help="key of --tls-cert-file")
    sec.add_argument("--client-ca-file", default="",
                     help="CA that signs client certificates; on --port every client must "
                          "present one (its CN is the user, its O the groups)")
    sec.add_argument("--token-auth-file", default="",
                     help="static bearer tokens, CSV rows token,user,uid,\"group1,group2\"")
    sec.add_argument("--token-port", type=int, default=6444,
                     help="TLS port that asks for no client certificate, for bearer-token "
                          "clients (served when --token-auth-file is given; 0: any free port)")
    sec.add_argument("--insecure-plaintext", action="store_true",
                     help="serve plaintext with no authentication, every caller being "
                          "system:masters (tests and local development only)")
    sec.add_argument("--authorization-mode", default="Node,RBAC",
                     help="comma-separated authorizers asked in order: Node, RBAC, "
                          "or AlwaysAllow")
    sec.add_argument("--audit-log-path", default=None,
                     help="JSON-lines audit log of refused requests and writes "
                          "(default: DATA_DIR/audit.log; '-': stdout; '': off)")
    sec.add_argument("--audit-log-maxsize", type=int, default=100,
                     help="megabytes the audit log may reach before it is rotated")
    sec.add_argument("--audit-log-maxbackup", type=int, default=5,
                     help="rotated audit log files kept")
    sec.add_argument("--etcd-cafile", default="", help="CA of etcd's serving certificate")
    sec.add_argument("--etcd-certfile", default="", help="client certificate for etcd")
    sec.add_argument("--etcd-keyfile", default="", help="key of --etcd-certfile")
    sec.add_argument("--kubelet-client-certificate", default="",
                     help="client certificate for calls to kubelets (logs, exec)")
    sec.add_argument("--kubelet-client-key", default="", help="key of --kubelet-client-certificate")
    sec.add_argument("--kubelet-certificate-authority", default="",
                     help="CA of the kubelets' serving certificates")
    lim = p.add_argument_group("limits")
    lim.add_argument("--max-requests-per-second-per-user", type=float, default=500.0,
                     help="sustained requests per second each user may make before "
                          "RESOURCE_EXHAUSTED (system:masters is exempt; 0: no limit)")
    lim.add_argument("--max-requests-burst-per-user", type=int, default=1000,
                     help="requests a user may make at once above the sustained rate")
    lim.add_argument("--max-watches-per-user", type=int, default=200,
                     help="watches one user may hold open (system:masters is exempt; 0: no "
                          "limit)")
    lim.add_argument("--max-objects-per-namespace", type=int, default=50_000,
                     help="objects of all kinds one namespace may hold; creates past it get "
                          "RESOURCE_EXHAUSTED (0: no limit)")
    p.add_argument("--log-level", default="info", help="debug, info, warning or error")
    opts = p.parse_args(argv)
    if not opts.insecure_plaintext and not (opts.tls_cert_file and opts.tls_private_key_file
                                            and opts.client_ca_file):
        p.error("give --tls-cert-file, --tls-private-key-file and --client-ca-file "
                "(or --insecure-plaintext for a server with no security at all)")
    if opts.insecure_plaintext and (opts.tls_cert_file or opts.token_auth_file):
        p.error("--insecure-plaintext cannot be combined with --tls-cert-file or "
                "--token-auth-file")
    return opts


def _etcd_credentials(opts: argparse.Namespace):
    if not (opts.etcd_cafile or opts.etcd_certfile or opts.etcd_keyfile):
        return None
    if not opts.etcd_cafile:
        raise ValueError("--etcd-certfile/--etcd-keyfile need --etcd-cafile")
    return tlsconfig.ClientTLS.load(opts.etcd_cafile, opts.etcd_certfile or None,
                                    opts.etcd_keyfile or None).credentials()


def _kubelet_tls(opts: argparse.Namespace) -> tlsconfig.ClientTLS | None:
    if not (opts.kubelet_client_certificate or opts.kubelet_certificate_authority):
        return None
    if not opts.kubelet_certificate_authority:
        raise ValueError("--kubelet-client-certificate needs --kubelet-certificate-authority")
    return tlsconfig.ClientTLS.load(opts.kubelet_certificate_authority,
                                    opts.kubelet_client_certificate or None,
                                    opts.kubelet_client_key or None)


def _access(opts: argparse.Namespace) -> AccessControl:
    """Authentication, limits and the audit log; the authorizers are
    attached once the server's caches exist (they read the RBAC objects)."""
    tokens = authn.load_token_file(opts.token_auth_file) if opts.token_auth_file else {}
    path = opts.audit_log_path
    if path is None:
        path = str(opts.data_dir / "audit.log")
    audit_log = AuditLog(path, max_bytes=opts.audit_log_maxsize * 1024 * 1024,
                         backups=opts.audit_log_maxbackup) if path else None
    if audit_log is not None:
        audit_log.open()
    return AccessControl(
        authn.Authenticator(tokens, insecure=opts.insecure_plaintext), audit_log=audit_log,
        rate_limiter=RequestRateLimiter(opts.max_requests_per_second_per_user,
                                        opts.max_requests_burst_per_user),
        watches=WatchCounter(opts.max_watches_per_user))


def _token_identity(access: AccessControl, token: str) -> tuple[str, tuple[str, ...]] | None:
    """(user, groups) of a token in the token file, for the metrics port."""
    user = access.authenticator.token_user(token)
    return None if user is None else (user.name, user.groups)


def _may_get(access: AccessControl, user: str, groups: tuple[str, ...], path: str) -> bool:
    """Whether a caller of the metrics port may get ``path``: the API
    server's own authorizers (RBAC's nonResourceURLs rules; the
    system:monitoring and cluster-admin roles allow /metrics), as for a
    Kubernetes non-resource request. A refusal is audited like any other
    (method "GET <path>")."""
    info = UserInfo(user, tuple(dict.fromkeys([*groups, AUTHENTICATED])))
    attrs = Attributes(user=info, verb="get", path=path)
    decision = access.authorize(attrs)
    if not decision.allowed and access.audit_log is not None:
        access.audit_log.write(audit.event(info, attrs, "forbid", "PERMISSION_DENIED",
                                           decision.reason, method=f"GET {path}"))
    return decision.allowed


async def serve(opts: argparse.Namespace) -> int:
    access = _access(opts)
    etcd_credentials = _etcd_credentials(opts)
    kubelet_tls = _kubelet_tls(opts)
    etcd = None
    if opts.etcd_servers:
        endpoints = [e.strip() for e in opts.etcd_servers.split(",") if e.strip()]
    else:
        etcd = EtcdProcess(opts.data_dir / "etcd", opts.embedded_etcd_port,
                           opts.embedded_etcd_port + 1, progress_interval=opts.bookmark_interval)
        await etcd.start()
        endpoints = [etcd.endpoint]
    storage = Storage(endpoints, timeout=opts.etcd_timeout, retry_for=60.0,
                      credentials=etcd_credentials)
    server = ApiServer(storage, service_cidr=opts.service_cluster_ip_range,
                       node_ports=allocator.parse_port_range(opts.service_node_port_range),
                       watch_cache_size=opts.watch_cache_size,
                       watch_batch_window=opts.watch_batch_window,
                       default_toleration_seconds=(opts.default_not_ready_toleration_seconds,
                                                   opts.default_unreachable_toleration_seconds),
                       compaction_interval=opts.etcd_compaction_interval,
                       access=access, max_objects_per_namespace=opts.max_objects_per_namespace,
                       kubelet_tls=kubelet_tls)
    access.authorize, access.admit = wiring.authorization(opts.authorization_mode, server.caches)
    credentials = token_credentials = serving = None
    if not opts.insecure_plaintext:
        serving = tlsconfig.ServingCert.load(opts.tls_cert_file, opts.tls_private_key_file,
                                             opts.client_ca_file)
        credentials = serving.grpc_credentials()
        if opts.token_auth_file:
            token_credentials = serving.grpc_credentials(require_client_auth=False)
    http = HttpServer(opts.bind_address, opts.metrics_port, health=server.healthy,
                      ssl_context=serving.ssl_context() if serving else None,
                      token_user=lambda token: _token_identity(access, token),
                      authorize=lambda user, groups, path: _may_get(access, user, groups, path))
    # A signal cancels whatever is under way, start-up included.
    main_task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main_task.cancel)
    install_task_dump(loop)
    try:
        await http.start()
        await server.start(opts.bind_address, opts.port, credentials=credentials,
                           token_port=opts.token_port, token_credentials=token_credentials)
        log.info("serving", extra={"port": server.port, "token_port": server.token_port,
                                   "metrics_port": http.port, "etcd": ",".join(endpoints),
                                   "tls": not opts.insecure_plaintext,
                                   "authorization": opts.authorization_mode})
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        pass
    finally:
        log.info("shutting down")
        await server.stop()
        await http.stop()
        if etcd is not None:
            await etcd.stop()
        if access.audit_log is not None:
            access.audit_log.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    setup_logging(opts.log_level)
    try:
        return asyncio.run(serve(opts))
    except (OSError, ValueError) as err:
        log.error("%s", err)
        print(f"kyb-apiserver: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
