"""Inspection jobs: the queue interface (`base.JobQueue`) and the fleet's Redis Streams backend (`redis`).

NOTE for the merge with the ``capacity`` branch: `base` is a stand-in with that branch's names and
signatures (``Job``, ``JobQueue.put/get/ack/nack/depth/oldest_age/recover``, ``CLASSES``); take the
capacity branch's ``base.py`` and ``__init__.py`` — `redis.RedisJobQueue` implements the same
methods.
"""

from appliance.jobs.base import CLASSES, Job, JobQueue

__all__ = ["CLASSES", "Job", "JobQueue"]
