"""The command line: `python3 -m phd_torch eval|generate|train|engine ...` with python/ on
PYTHONPATH (or `python3 python/phd_torch ...`), alone or as each process of torchrun (`python3 -m
torch.distributed.run --standalone --nproc_per_node N -r 1 -t 1 -m phd_torch train ...`). Every
failure is one `error:` line and exit status 1 (python/one_line_errors.py); PHD_DEBUG=1 shows
the traceback.
"""
import json
import os
import sys

if not __package__:  # run as a folder, python3 python/phd_torch: import the package by name
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from one_line_errors import Parser, non_negative, positive, run  # noqa: E402
from phd_torch import __doc__ as summary  # noqa: E402
from phd_torch.infer import cmd_eval, cmd_generate  # noqa: E402
from phd_torch.train import cmd_train  # noqa: E402


def cmd_engine(args):
    """Print the torch, BLAS, threads and device this interpreter trains with (one JSON line)."""
    import torch

    from phd_torch.engine import describe

    print(json.dumps(describe(torch.device("cuda" if torch.cuda.is_available() else "cpu"))))


def step_list(v):
    """argparse type: comma-separated positive integers (steps)."""
    return [positive(x) for x in v.split(",")]


def parser():
    p = Parser(prog="phd_torch", description=summary.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def command(name, fn, help):
        s = sub.add_parser(name, help=help, description=fn.__doc__)
        s.set_defaults(fn=fn)
        s.add_argument("--mask", required=True, help="module of deno task export SPEC --to flex")
        s.add_argument(
            "--attention",
            choices=("auto", "flex", "dense"),
            default="auto",
            help="flex_attention (torch >= 2.5) or the dense mask; auto picks flex when there",
        )
        s.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        return s

    e = command("eval", cmd_eval, "mean next-token loss of a checkpoint on a text")
    e.add_argument("--ckpt", required=True)
    e.add_argument("--text-file", required=True)
    e.add_argument(
        "--context", type=positive, help="predictions per window (default: the checkpoint's)"
    )
    e.add_argument("--batch", type=positive, default=8)
    e.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    g = command("generate", cmd_generate, "greedy continuation of a prompt")
    g.add_argument("--ckpt", required=True)
    g.add_argument("--prompt", required=True)
    g.add_argument("--max-new-tokens", type=positive, required=True)
    n = sub.add_parser("engine", help=cmd_engine.__doc__, description=cmd_engine.__doc__)
    n.set_defaults(fn=cmd_engine)
    t = command("train", cmd_train, "train on a token file, alone or under torchrun")
    t.add_argument("--config", help="a fresh model: this project's config file or a HF config.json")
    t.add_argument("--init", help="a new run from this checkpoint's weights")
    t.add_argument("--resume", help="continue this checkpoint's run (its series' newest unit)")
    t.add_argument("--tokens", help="token file of deno task tokenize (default: data.tokens)")
    t.add_argument("--steps", type=positive, help="total steps (train.steps)")
    t.add_argument("--batch", type=positive, help="global batch (train.batch_size) of all ranks")
    t.add_argument("--seq-len", type=positive, help="positions per window (train.seq_len)")
    t.add_argument("--lr", type=float, help="peak learning rate (train.lr)")
    t.add_argument("--seed", type=non_negative, help="initial weights and batches (train.seed)")
    t.add_argument("--save-every", type=non_negative, help="a checkpoint unit every N steps")
    t.add_argument("--log-every", type=positive, help="a logged mean loss every N steps")
    t.add_argument(
        "--eval-at",
        type=step_list,
        help="validate after these steps too (comma-separated, each before the last step)",
    )
    t.add_argument("--grad-accum", type=positive, default=1, help="micro-batches per rank and step")
    t.add_argument("--out", help="checkpoint to write (default with --resume: that one)")
    t.add_argument(
        "--force", action="store_true", help="replace an --out that is not a checkpoint of ours"
    )
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    t.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="bf16: CUDA autocast")
    t.add_argument("--fsdp", action="store_true", help="FullyShardedDataParallel per block (CUDA)")
    t.add_argument("--threads", type=positive, help="torch.set_num_threads (default: torch's)")
    return p


def main(argv):
    args = parser().parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    run(main)
