"""Inspection jobs: one queue interface (`base.JobQueue`), the one-box backend (`local`), the
fleet's Redis Streams backend (`redis`) and the work items a job carries (`codec`). The
scheduler (`appliance.scheduler`) sits on top."""

from appliance.jobs.base import CLASSES, Job, JobQueue

__all__ = ["CLASSES", "Job", "JobQueue"]
