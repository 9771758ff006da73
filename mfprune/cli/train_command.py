"""``mfprune train``: initialise, prune, repair and train one network or K seeds of it in one program."""

from __future__ import annotations

import argparse
import time

from mfprune.cli import arguments


def register(commands) -> None:
  from mfprune.train import LR_SCHEDULES, OPTIMIZERS

  train = commands.add_parser(
      "train", help="prune at initialisation, repair, train; write metrics, checkpoints and curves",
      description="Build a model, initialise it (--init), prune it (--method, --sparsity), optionally rescale it "
      "back to the EOC (--rescale, [R] Alg. 1) or make it approximately isometric (--isometry, [S] eq. 8), and "
      "train it with a mask-preserving optimizer. --seeds K trains K seeds in one compiled program. Writes "
      "OUT/{config.json, mask.npz, density.png, diagnostics.json, metrics.jsonl, checkpoints/, curves.png, "
      "result.json}; --resume continues an interrupted run to the same result.")
  arguments.add_model_options(train)
  arguments.add_init_options(train)
  arguments.add_pruning_options(train, required=False)
  repairs = train.add_argument_group("repairs")
  repairs.add_argument("--rescale", nargs="?", const="row", choices=("row", "layer"), default=None,
                       help="EOC rescaling after pruning: per output neuron/channel (row, the default when the "
                       "flag is given; [R] Alg. 1) or per layer")
  repairs.add_argument("--isometry", type=arguments.non_negative_int, default=0, metavar="STEPS",
                       help="approximate isometry: gradient steps on ||(C*W)^T(C*W) - I|| ([S] eq. 8; default 0)")
  arguments.add_data_options(train, validation=True)
  options = train.add_argument_group("training")
  options.add_argument("--steps", type=arguments.positive_int, default=1000, help="optimizer steps (default 1000)")
  options.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="default sgd")
  options.add_argument("--lr", type=arguments.positive_float, default=0.1, help="initial learning rate (0.1)")
  options.add_argument("--momentum", type=float, default=0.9, help="for --optimizer momentum (default 0.9)")
  options.add_argument("--nesterov", action="store_true", help="Nesterov momentum")
  options.add_argument("--weight-decay", type=float, default=0.0, help="coupled weight decay (default 0)")
  options.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant",
                       help="constant, piecewise (x decay at 1/2 and 3/4 of training, [R] §4.2) or step "
                       "(x decay every --decay-every steps, [S] App. B)")
  options.add_argument("--decay", type=float, default=0.1, help="learning-rate decay factor (default 0.1)")
  options.add_argument("--decay-every", type=arguments.positive_int, help="steps between decays (step schedule)")
  options.add_argument("--augment", action="store_true", help="random crop and flip (CIFAR)")
  arguments.add_seed_option(options, "the first run (initialisation, mask, data order)")
  options.add_argument("--seeds", type=arguments.positive_int, default=1,
                       help="train K networks with seeds seed..seed+K-1 in one program (jax.vmap; default 1)")
  options.add_argument("--devices", type=arguments.positive_int, default=None,
                       help="data parallel over this many devices (default: one)")
  options.add_argument("--eval-every", type=arguments.non_negative_int, default=0,
                       help="evaluate every this many steps (default: steps/10)")
  options.add_argument("--log-every", type=arguments.positive_int, default=50, help="steps per metrics line")
  options.add_argument("--checkpoint-every", type=arguments.non_negative_int, default=None,
                       help="steps between checkpoints (default: steps/10; 0: only at the end)")
  options.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
  options.add_argument("--no-progress", action="store_true", help="no progress bar")
  arguments.add_out_option(train, "runs/train")
  train.set_defaults(run=run)


def _config(args: argparse.Namespace):
  from mfprune.train import TrainConfig

  tenth = max(1, args.steps // 10)
  return TrainConfig(steps=args.steps, batch_size=args.batch_size, optimizer=args.optimizer, learning_rate=args.lr,
                     momentum=args.momentum, nesterov=args.nesterov, weight_decay=args.weight_decay,
                     lr_schedule=args.lr_schedule, decay=args.decay, decay_every=args.decay_every,
                     augment=args.augment, seed=args.seed, eval_every=args.eval_every or tenth,
                     log_every=min(args.log_every, args.steps),
                     checkpoint_every=tenth if args.checkpoint_every is None else args.checkpoint_every)


def run(args: argparse.Namespace) -> int:
  import json

  import jax
  import numpy as np

  from mfprune import masks, pipeline, report, signal, train
  from mfprune.cli.prune_command import density_chart

  if args.method is None and args.sparsity:
    raise ValueError("--sparsity needs --method (the pruning method)")
  config = _config(args)  # validates the training numbers before any work
  splits = arguments.load_data(args)
  apply_fn, init, activation = arguments.build_model(args, splits)
  x_probe = splits.train.x[:min(64, len(splits.train.x))]
  seeds = list(range(args.seed, args.seed + args.seeds))
  saved_mask = args.out / "mask.npz"
  if args.resume and not (args.out / "config.json").exists():
    raise FileNotFoundError(f"cannot resume: {args.out / 'config.json'} does not exist (no run was started there)")
  if not args.resume and (args.out / "checkpoints").is_dir() and any((args.out / "checkpoints").iterdir()):
    raise ValueError(f"{args.out} already holds checkpoints: add --resume to continue that run, or choose another "
                     "--out")
  if args.resume:  # the checkpoint holds the parameters; the masks were saved when the run started
    abstract = jax.eval_shape(jax.vmap(init), jax.random.split(jax.random.key(0), len(seeds)))
    saved_masks = train.unstack(masks.load_mask(saved_mask, abstract))
  members, member_masks, diagnostics = [], [], []
  print(f"{args.model} on {splits.name}: {len(seeds)} seed(s), "
        f"{args.method or 'dense'} at sparsity {args.sparsity}" + (f", rescale {args.rescale}" if args.rescale else "")
        + (f", {args.isometry} AI steps" if args.isometry else ""), flush=True)
  for index, seed in enumerate(seeds):  # pruning compiles once; the loop reuses it
    params = pipeline.initial_params(init, seed, args.init, **arguments.init_options(args, activation))
    if args.resume:
      members.append(params)  # only its structure matters: train() restores the checkpoint
      member_masks.append(saved_masks[index])
      continue
    batches = [splits.train.batch(args.batch_size, seed=seed + i) for i in range(args.num_batches)]
    params, mask = pipeline.prune_and_repair(
        apply_fn, params, iter(batches), method=args.method, sparsity=args.sparsity, key=seed,
        rescale=args.rescale, isometry_steps=args.isometry, num_batches=args.num_batches, rounds=args.rounds,
        schedule=args.prune_schedule, scope=args.scope, on_collapse=args.on_collapse)
    members.append(params)
    member_masks.append(mask)
    jacobian = signal.jacobian_statistics(apply_fn, params, x_probe, mask=mask)
    diagnostics.append({"seed": seed, "sparsity": masks.sparsity_of(mask), "collapsed": masks.collapsed_layers(mask),
                        "jacobian": jacobian.to_dict()})
  ensemble = len(seeds) > 1
  params = train.stack(members) if ensemble else members[0]
  mask = train.stack(member_masks) if ensemble else member_masks[0]
  if args.resume:
    diagnostics = json.loads((args.out / "diagnostics.json").read_text())["members"]
  else:
    masks.save_mask(saved_mask, train.stack(member_masks))  # (K, ...) leaves, K = 1 for one seed
    table = density_chart(args.out, member_masks[0], apply_fn, members[0], x_probe,
                          f"{args.model}, {args.method or 'dense'}, sparsity {args.sparsity}")
    report.write_json(args.out / "diagnostics.json", {"activation": activation, "members": diagnostics,
                                                      "layers_seed0": [d.to_dict() for d in table]})
  start = time.perf_counter()
  result = train.train(apply_fn, params, mask, splits, config, out=args.out, resume=args.resume,
                       ensemble=ensemble, devices=args.devices, progress=not args.no_progress,
                       extra_config={"settings": arguments.settings(args), "title": f"{args.model} {args.method}"},
                       labels=[f"seed {seed}" for seed in seeds])
  accuracy = np.atleast_1d(result.final["test"]["accuracy"])
  rows = [[seed, d["sparsity"], ", ".join(d["collapsed"]) or "-", d["jacobian"]["mean"], acc]
          for seed, d, acc in zip(seeds, diagnostics, accuracy)]
  print(report.format_table(["seed", "sparsity", "collapsed", "mean sing. value J", "test accuracy"], rows))
  print(f"{config.steps} steps in {time.perf_counter() - start:.1f} s ({result.examples_per_second:.0f} examples/s"
        f"{', resumed from step ' + str(result.resumed_from) if result.resumed_from else ''}); "
        f"test accuracy {np.mean(accuracy):.4f}" + (f" ± {np.std(accuracy):.4f}" if ensemble else ""))
  print(f"wrote {args.out}/{{config.json, mask.npz, density.png, diagnostics.json, metrics.jsonl, checkpoints/, "
        f"curves.png, result.json}}")
  return 0
