#!/usr/bin/python3
# tools/bench_w3_torch.py: W3 in PyTorch, for `tapegrad bench W3` to time side by side
# (bench_w3.c runs it as a child process, alternating with its own repetitions):
# an MLP 784 -> 512 relu -> 256 relu -> 10, softmax cross-entropy, float32, batch 128 of
# seeded synthetic data (normal inputs, uniform class ids), plain SGD at W3's learning rate
# (0.01, TG_OPTIM_OPTIONS_INIT), He-uniform weights and zero biases as tg_model_new makes
# them; WARMUP untimed steps, then STEPS timed ones. The data are torch's own draws (the same
# distribution, not tapegrad's numbers): the time of a step does not depend on them.
#
#   /usr/bin/python3 tools/bench_w3_torch.py --threads T [--steps N] [--warmup W] [--quick]
#
# OMP_WAIT_POLICY is PASSIVE unless set (see main). Prints one JSON line: the median ms per
# step and of its parts (forward, backward, update: optimizer step and zero_grad), the final
# loss, torch's version and thread count, and the BLAS it multiplies with (torch.__config__'s
# BLAS_INFO and the BLAS library this process loaded, from /proc/self/maps). Exit status 2 when
# torch cannot be imported (bench: "unavailable").
import argparse
import json
import os
import statistics
import sys
import time


def loaded_blas():
    """The BLAS shared libraries this process mapped ("" when none is found)."""
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                name = os.path.basename(path)
                if "blas" in name or "mkl_rt" in name or name.startswith("libmkl"):
                    libs.add(os.path.realpath(path))
    except OSError:
        pass
    return ",".join(sorted(libs))


def main():
    ap = argparse.ArgumentParser(description="W3 in PyTorch: ms per step")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="784-64-32-10 at batch 8, as bench's")
    a = ap.parse_args()
    # OpenBLAS reads its thread count when it loads: set before torch brings it in
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    # torch's OpenMP threads sleep while OpenBLAS's own threads multiply, unless the caller
    # says otherwise: spinning (libgomp's default) they take the cores from OpenBLAS's threads
    # whenever anything else runs, and 2 threads ran W3 at 40-230 ms a step instead of 6
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # noqa: BLE001 - any failure to import means "unavailable"
        print(f"torch cannot be imported: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    sizes, batch = ([784, 64, 32, 10], 8) if a.quick else ([784, 512, 256, 10], 128)
    torch.manual_seed(42)
    layers = []
    for i in range(3):
        lin = torch.nn.Linear(sizes[i], sizes[i + 1])
        bound = (6.0 / sizes[i]) ** 0.5
        with torch.no_grad():
            lin.weight.uniform_(-bound, bound)
            lin.bias.zero_()
        layers.append(lin)
        if i < 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    x = torch.randn(batch, sizes[0], dtype=torch.float32)
    y = torch.randint(0, sizes[-1], (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    fwd, bwd, upd, step = [], [], [], []
    loss = None
    for s in range(-a.warmup, a.steps):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)  # torch's fastest (and 2.x's default)
        t3 = time.perf_counter()
        if s >= 0:
            fwd.append((t1 - t0) * 1e3)
            bwd.append((t2 - t1) * 1e3)
            upd.append((t3 - t2) * 1e3)
            step.append((t3 - t0) * 1e3)
    cfg = torch.__config__.show()
    blas_info = next((f.split("=", 1)[1] for f in cfg.replace(",", " ").split()
                      if f.startswith("BLAS_INFO=")), "unknown")
    print(json.dumps({
        "ms_per_step": statistics.median(step),
        "forward_ms": statistics.median(fwd),
        "backward_ms": statistics.median(bwd),
        "update_ms": statistics.median(upd),
        "final_loss": float(loss.item()),
        "steps": a.steps,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "blas": f"{blas_info} ({loaded_blas() or 'no BLAS library mapped'})",
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
