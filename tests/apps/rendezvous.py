"""One replica of a multi-node trial: meets the others over TCP, standard library only.

Rank 0 listens on MASTER_ADDR:MASTER_PORT, every other rank connects and says its rank,
and rank 0 answers with all of them, as torch.distributed's env:// rendezvous would.
"""

import json
import os
import socket
import sys
import time
from pathlib import Path


def main(out_dir: str) -> None:
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    seen = {
        "rank": rank,
        "world_size": world,
        "master": f"{addr}:{port}",
        "cluster_spec": json.loads(os.environ["CLUSTER_SPEC"]),
        "tf_config": json.loads(os.environ["TF_CONFIG"]),
        "job_id": os.environ["CLOUD_ML_JOB_ID"],
        "model_dir": os.environ["AIP_MODEL_DIR"],
    }
    if rank == 0:
        server = socket.create_server((addr, port))
        server.settimeout(60)
        peers, conns = [0], []
        for _ in range(world - 1):
            conn, _ = server.accept()
            peers.append(int(conn.recv(64).decode()))
            conns.append(conn)
        for conn in conns:
            conn.sendall(json.dumps(sorted(peers)).encode())
            conn.close()
        seen["peers"] = sorted(peers)
    else:
        deadline = time.time() + 60
        while True:
            try:
                sock = socket.create_connection((addr, port), timeout=5)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        sock.sendall(str(rank).encode())
        seen["peers"] = json.loads(sock.recv(4096).decode())
    Path(out_dir, f"rank-{rank}.json").write_text(json.dumps(seen))
    print(f"rank {rank} of {world} met {seen['peers']}")


if __name__ == "__main__":
    main(sys.argv[1])
