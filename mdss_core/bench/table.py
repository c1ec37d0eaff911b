"""Plain-text table of a benchmark result (the dictionary ``run_bench`` returns)."""

from __future__ import annotations

from typing import Any


def format_table(result: dict[str, Any]) -> str:
    st = result["stages"]
    stages = st["stages_ms"]
    tp, fl, tr, md = result["throughput"], result["floor"], result["training"], result["model"]
    cfg = result["settings"]
    load = result["load_average"]
    lines = [
        f"mdss bench — device {result['device']} ({result['device_name']}), "
        f"{result['torch_threads']} torch threads, {cfg['size']}² samples, preset {cfg['preset']}, "
        f"median of {cfg['repeats']} after {cfg['warmup']} warm-up",
        f"load average before {load['before'][0]:.2f}, after {load['after'][0]:.2f} "
        f"on {result['cpu_count']} cores",
    ]
    if result["noisy_machine"]:
        lines.append("NOTE: machine shared with other work (high load): timings are noisy/inflated")
    lines += [
        "",
        f"one sample ({st['points']} points, {st['patches'][0]}×{st['patches'][1]} patches)   ms",
        f"  load (read files)            {stages['load']:9.2f}",
        f"  preprocess (plane+resize)    {stages['plane_and_resize']:9.2f}",
        f"  preprocess (patching)        {stages['patching']:9.2f}",
        f"  RGB branch                   {stages['rgb_branch']:9.2f}",
        f"  geometry branch              {stages['geometry_branch']:9.2f}",
        f"  fusion + regions             {stages['fusion']:9.2f}",
        f"  end to end (load+predict)    {result['end_to_end_ms']:9.2f}",
        f"  peak extra memory in predict {result['predict_peak_mb']:9.2f} MB"
        f"  (process max RSS {result['process_max_rss_mb']:.0f} MB)",
        "",
        f"throughput: {tp['samples_per_s_single']:.2f} samples/s one by one, "
        f"{tp['samples_per_s_batched']:.2f} samples/s with the RGB branch batched ×{tp['batch']} "
        f"(RGB {tp['rgb_ms_per_image_single']:.1f} → "
        f"{tp['rgb_ms_per_image_batched']:.1f} ms/image)",
        f"pipelined: {tp['samples_per_s_pipelined']:.2f} samples/s end to end (files read, "
        f"batches of {tp['pipeline_batch']}, {tp['pipeline_workers']} preparing workers, "
        f"steady state over {tp['pipeline_samples'] - tp['pipeline_batch']} samples)",
        f"model file: {md['model_file_mb']:.2f} MB float32, {md['model_file_half_mb']:.2f} MB "
        f"float16; parameters+buffers {md['params_mb']:.2f} MB",
        f"training step (fast settings): RGB {tr['rgb_step_ms']:.1f} ms (batch {tr['rgb_batch']}, "
        f"crop {tr['rgb_crop']}), SDF {tr['sdf_step_ms']:.1f} ms (batch {tr['sdf_batch']})",
        f"compute floor: {fl['gflop']:.3f} GFLOP per prediction (RGB {fl['rgb_flops'] / 1e9:.3f}, "
        f"SDF {fl['sdf_flops'] / 1e9:.3f}) at {fl['gflops_per_s']:.1f} GFLOP/s sustained conv "
        f"→ floor {fl['floor_ms']:.2f} ms; end to end = {fl['end_to_end_over_floor']:.2f}× floor",
        f"  (end to end and the reference conv timed in alternation, median of {fl['pairs']} pairs;"
        " scaling: mdss and peer in alternation)",
        "",
        "scaling (per sample, inference)     time ms               memory MB",
        "  n_train      mdss      peer  peer/mdss      mdss      peer  peer/mdss",
    ]
    for row in result["scaling"]:
        lines.append(
            f"  {row['n_train']:7d} {row['mdss_ms']:9.1f} {row['peer_ms']:9.1f} "
            f"{row['peer_ms'] / max(row['mdss_ms'], 1e-9):10.2f} {row['mdss_mem_mb']:9.1f} "
            f"{row['peer_mem_mb']:9.1f} {row['peer_mem_mb'] / max(row['mdss_mem_mb'], 1e-9):10.2f}"
        )
    g = result["scaling_growth"]
    lines.append(
        f"  growth smallest→largest n_train: mdss time ×{g['mdss_ms']:.2f}, "
        f"peer time ×{g['peer_ms']:.2f}, mdss memory ×{g['mdss_mem_mb']:.2f}, "
        f"peer memory ×{g['peer_mem_mb']:.2f}"
    )
    lines.append(
        "  (peer = PatchCore-style exact nearest neighbour over all foreground teacher cells and "
        "all training points' normal/curvature features;\n"
        "   memory: peer = teacher weights + bank + peak, "
        "mdss = parameters (+ packed CPU copies) + peak extra memory)"
    )
    return "\n".join(lines)
