"""kyb-scheduler: assigns pending pods to nodes, as kube-scheduler does.

Replicas race for the Lease kube-system/kube-scheduler; only the holder
schedules, while standbys keep their caches warm so they can take over at
once. A leader that loses the Lease exits non-zero (kube-scheduler's
"leaderelection lost"), so its supervisor restarts it as a fresh standby
and nothing keeps binding on a stale belief that it leads.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from services.machinery import Client, LeaderElector, SharedInformerFactory
from services.machinery import delegated, flags
from services.machinery.config import ClientConfig
from services.machinery.flags import boolean, duration  # noqa: F401 (re-exported for tests)
from services.machinery.httpserver import HttpServer
from services.machinery.leaderelection import default_identity
from services.machinery.logs import install_task_dump, setup_logging
from services.scheduler import config as cfg
from services.scheduler.scheduler import Scheduler

log = logging.getLogger("kyb-scheduler")

LEASE_NAME = "kube-scheduler"
LEASE_NAMESPACE = "kube-system"
EXIT_LEADERSHIP_LOST = 1

class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except None (those flags say in words what they default to)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None:
            return action.help or ""
        return super()._get_help_string(action)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kyb-scheduler", description=__doc__,
                                formatter_class=_HelpFormatter)
    flags.add_client_flags(p)
    p.add_argument("--bind-address", default="0.0.0.0", help="address for the metrics port")
    p.add_argument("--metrics-port", type=int, default=10259,
                   help="HTTP port for /metrics and /healthz (0: any free port)")
    flags.add_serving_flags(p)
    flags.add_leader_election(p, "scheduling", LEASE_NAME, LEASE_NAMESPACE)
    p.add_argument("--scheduler-name", default=cfg.DEFAULT_SCHEDULER_NAME,
                   help="schedule pods whose spec.schedulerName is this (the profile name when "
                        "--config gives profiles without one)")
    p.add_argument("--percentage-of-nodes-to-score", type=int, default=None,
                   help="stop searching for feasible nodes once this percent of the cluster "
                        "is found (at least 100 nodes); 0: adaptive, 50%% minus 1%% per 125 "
                        "nodes, at least 5%% (default: the config file's, else 0)")
    p.add_argument("--config", default=None,
                   help="YAML file in KubeSchedulerConfiguration form: profiles with enabled/"
                        "disabled filter and score plugins and score weights (default: the "
                        "built-in default profile)")
    p.add_argument("--log-level", default="info", help="debug, info, warning or error")
    return p.parse_args(argv)


def load(opts: argparse.Namespace) -> tuple[cfg.SchedulerConfig, int]:
    """The configuration and the percentage of nodes to score; raises
    ValueError with a one-line message."""
    if opts.config:
        config = cfg.load_config(opts.config, opts.scheduler_name)
    else:
        config = cfg.default_config(opts.scheduler_name)
    percentage = opts.percentage_of_nodes_to_score
    if percentage is None:
        percentage = config.percentage_of_nodes_to_score or 0
    if not 0 <= percentage <= 100:
        raise ValueError("--percentage-of-nodes-to-score must be from 0 to 100")
    flags.check_leader_election(opts)
    return config, percentage


async def run(opts: argparse.Namespace, config: cfg.SchedulerConfig, percentage: int,
              client_config: ClientConfig) -> int:
    client = Client(config=client_config)
    servers = client.servers
    tls = flags.serving_cert(opts, client_config)
    factory = SharedInformerFactory(client)
    identity = default_identity()
    scheduler = Scheduler(client, factory, cfg.build_profiles(config),
                          percentage_of_nodes_to_score=percentage, identity=identity)

    async def ready() -> tuple[bool, str]:
        synced = scheduler.pod_informer.has_synced and scheduler.node_informer.has_synced
        return synced, "ok" if synced else "informers not synced"

    http = HttpServer(opts.bind_address, opts.metrics_port, ready=ready,
                      ssl_context=tls.ssl_context() if tls is not None else None,
                      authorize=delegated.for_serving(tls, client))
    main_task = asyncio.current_task()
    assert main_task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main_task.cancel)
    install_task_dump(loop)
    failed = False

    async def schedule(stop: asyncio.Event | None = None) -> None:
        nonlocal failed
        try:
            await scheduler.run(stop)
        except Exception:  # noqa: BLE001 - a broken leader must not sit on the Lease
            log.exception("the scheduling loop failed; exiting")
            failed = True
            main_task.cancel()

    code = 0
    try:
        await http.start()
        factory.start()
        log.info("serving metrics", extra={"port": http.port, "server": ",".join(servers),
                                           "profiles": ",".join(p.scheduler_name
                                                                for p in config.profiles)})
        if opts.leader_elect:
            elector = LeaderElector(
                client, opts.leader_elect_resource_name, opts.leader_elect_resource_namespace,
                identity=identity, lease_duration=opts.leader_elect_lease_duration,
                renew_deadline=opts.leader_elect_renew_deadline,
                retry_period=opts.leader_elect_retry_period, on_started_leading=schedule)
            log.info("waiting for leadership", extra={
                "lease": f"{elector.namespace}/{elector.name}", "identity": identity})
            await elector.run()
            log.error("leaderelection lost")
            code = EXIT_LEADERSHIP_LOST
        else:
            await schedule()
    except asyncio.CancelledError:
        log.info("shutting down")
        code = 1 if failed else 0
    finally:
        await factory.stop()
        await http.stop()
        await client.close()
    return code


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    try:
        client_config = flags.client_config(opts)
        flags.serving_cert(opts, client_config)  # checked now, before anything starts
        config, percentage = load(opts)
    except ValueError as err:
        print(f"kyb-scheduler: {err}", file=sys.stderr)
        return 2
    setup_logging(opts.log_level)
    try:
        return asyncio.run(run(opts, config, percentage, client_config))
    except (OSError, ValueError) as err:
        log.error("%s", err)
        print(f"kyb-scheduler: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
