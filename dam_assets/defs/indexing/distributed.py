"""Running the per-file assets on Celery workers (dagster-celery, Redis or RabbitMQ broker).

Each step of `index_media_celery` becomes a Celery task; any number of worker machines run
`dagster-celery worker start -A dagster_celery.app -y celery.yaml` with the same code and the
same `DAM_DATA_DIR` (a shared filesystem: NFS/SMB; the storage paths are configuration). Run
config (and the workers' celery.yaml):

    execution:
      config:
        broker: redis://broker-host:6379/0
        backend: redis://broker-host:6379/1

On Kubernetes, dagster-k8s's `k8s_job_executor` plays the same role with one pod per step.
"""

from dagster import AssetSelection, define_asset_job
from dagster_celery import celery_executor

from .jobs import MEDIA_ASSETS

index_media_celery_job = define_asset_job(
    "index_media_celery",
    selection=AssetSelection.assets(*MEDIA_ASSETS),
    executor_def=celery_executor,
    description="index_media with every step on a Celery worker (README > Distributed).",
)
