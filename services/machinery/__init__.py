"""Client machinery: the only way components reach the API server.

Public surface: :class:`Client` (typed, deadline-bound calls with failover),
the error classes, informers and their store, work queues and rate limiters,
leader election, and injectable clocks.
"""

from services.machinery.client import Client, ResourceClient
from services.machinery.clock import Clock, FakeClock, RealClock
from services.machinery.errors import (
    AlreadyExists, ApiError, Conflict, Expired, Forbidden, Invalid, NotFound,
    PreconditionFailed, TooLarge, Unavailable,
)
from services.machinery.informer import Informer, SharedInformerFactory
from services.machinery.leaderelection import LeaderElector
from services.machinery.ratelimit import Backoff, default_controller_rate_limiter
from services.machinery.store import DeletedFinalStateUnknown, Store, object_key
from services.machinery.workqueue import ShutDown, WorkQueue, run_workers

__all__ = [
    "Client", "ResourceClient",
    "ApiError", "AlreadyExists", "Conflict", "Expired", "Forbidden", "Invalid", "NotFound",
    "PreconditionFailed", "TooLarge", "Unavailable",
    "Clock", "FakeClock", "RealClock",
    "Informer", "SharedInformerFactory", "Store", "object_key", "DeletedFinalStateUnknown",
    "WorkQueue", "ShutDown", "run_workers", "Backoff", "default_controller_rate_limiter",
    "LeaderElector",
]
