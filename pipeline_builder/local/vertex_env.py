"""The environment Vertex gives each replica of a CustomJob, for replicas run on this machine.

Every replica of the job gets the job's variables, and its own place in the cluster; here
the cluster is 127.0.0.1 with one free port per replica.
"""

import json
import socket
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from ..spec.settings import REDUCTION_SERVER_IMAGE

# Vertex's pool order, and the task type TF_CONFIG gives each pool:
# https://cloud.google.com/vertex-ai/docs/training/distributed-training#cluster-spec
TF_TASK_TYPES = ("chief", "worker", "ps", "evaluator")


@dataclass
class Replica:
    """One process of the job: its pool, its index in the pool and that pool's spec."""

    pool: int
    index: int
    spec: Mapping[str, Any]

    @property
    def name(self) -> str:
        """As Vertex names a replica: `workerpool0-0` is the chief."""
        return f"workerpool{self.pool}-{self.index}"

    @property
    def chief(self) -> bool:
        return (self.pool, self.index) == (0, 0)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replica_counts(job_spec: Mapping[str, Any]) -> List[int]:
    """Replicas per pool as they run here. The reduction server only speeds up all-reduce
    between GPU hosts on Vertex; the app's replicas run without it, so it is left out."""
    counts = []
    for pool in job_spec.get("worker_pool_specs", []):
        image = pool.get("container_spec", {}).get("image_uri")
        counts.append(0 if image == REDUCTION_SERVER_IMAGE else int(pool.get("replica_count", 0) or 0))
    return counts


def replicas(job_spec: Mapping[str, Any]) -> List[Replica]:
    pools = job_spec.get("worker_pool_specs", [])
    return [Replica(p, i, pools[p]) for p, n in enumerate(replica_counts(job_spec)) for i in range(n)]


def job_environment(job: Mapping[str, Any], job_id: str) -> Dict[str, str]:
    """The variables every replica of `job` (a CustomJob as a dict) gets."""
    # CLOUD_ML_JOB_ID, and AIP_* as gs:// URIs under base_output_directory:
    # https://cloud.google.com/vertex-ai/docs/training/code-requirements#environment-variables
    # (CustomJobSpec.base_output_directory in the proto says the same). Code opens them with a
    # Cloud Storage client or at their /gcs/... path, which the fuse module routes here.
    env = {"CLOUD_ML_JOB_ID": job_id}
    base = job.get("job_spec", {}).get("base_output_directory", {}).get("output_uri_prefix", "")
    if base:
        base = base.rstrip("/")
        env["AIP_MODEL_DIR"] = f"{base}/model/"
        env["AIP_CHECKPOINT_DIR"] = f"{base}/checkpoints/"
        env["AIP_TENSORBOARD_LOG_DIR"] = f"{base}/logs/"
    return env


def replica_environment(
    job_spec: Mapping[str, Any], counts: Sequence[int], replica: Replica, ports: Mapping[Tuple[int, int], int]
) -> Dict[str, str]:
    """CLUSTER_SPEC, TF_CONFIG and the torch.distributed variables for one replica."""
    cluster = {f"workerpool{p}": [f"127.0.0.1:{ports[(p, i)]}" for i in range(n)] for p, n in enumerate(counts) if n}
    pool, index = replica.pool, replica.index
    env = {
        # https://cloud.google.com/vertex-ai/docs/training/distributed-training#cluster-spec
        "CLUSTER_SPEC": json.dumps(
            {
                "cluster": cluster,
                "environment": "cloud",
                "task": {"type": f"workerpool{pool}", "index": index},
                "job": dict(job_spec),
            }
        ),
        # https://cloud.google.com/vertex-ai/docs/training/distributed-training#tf-config
        "TF_CONFIG": json.dumps(
            {
                "cluster": {
                    TF_TASK_TYPES[p]: cluster[f"workerpool{p}"] for p, n in enumerate(counts) if n and p < len(TF_TASK_TYPES)
                },
                "task": {"type": TF_TASK_TYPES[pool] if pool < len(TF_TASK_TYPES) else f"workerpool{pool}", "index": index},
                "environment": "cloud",
            }
        ),
    }
    if pool <= 1:
        # Chief and workers form the torch.distributed world, as in Vertex's PyTorch images:
        # https://cloud.google.com/vertex-ai/docs/training/pre-built-containers
        env.update(
            RANK=str(index if pool == 0 else counts[0] + index),
            WORLD_SIZE=str(sum(counts[:2])),
            LOCAL_RANK="0",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(ports[(0, 0)]),
        )
    return env


def cluster_ports(counts: Sequence[int]) -> Dict[Tuple[int, int], int]:
    return {(p, i): free_port() for p, n in enumerate(counts) for i in range(n)}
