"""Train the digits classifier behind digits-FID/KID/IS and mode coverage; write its shipped
weights.

  python scripts/train_digits_classifier.py [--out jaxgan/metrics/digits_classifier.safetensors]
      [--force]

It trains on the built-in digits' training split (the first 1,500 of scikit-learn's 1,797 digits, at
32x32 with random shifts of up to 2 pixels) with AdamW and a cosine schedule, then measures the
accuracy on the 297 held-out digits at 32x32 and 64x64 and refuses to write weights below 97%. The
features are scaled to unit root-mean-square on the training digits. Deterministic: the same seed
writes the same file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

MIN_ACCURACY = 0.97


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", default=None, help="weights file (default: the shipped jaxgan/metrics one)"
    )
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out")
    args = parser.parse_args(argv)

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from safetensors.numpy import save_file

    from jaxgan.atomic import atomic_path, check_writable
    from jaxgan.data.sources import DIGITS_TEST, digits_images, digits_labels, split_range
    from jaxgan.metrics.digits import INPUT_SIZE, WEIGHTS_PATH, DigitsNet, classify, flat_weights

    out = check_writable(args.out or WEIGHTS_PATH, args.force)
    started = time.perf_counter()
    images, labels = digits_images(32, 1), digits_labels()
    train, test = (split_range(len(images), DIGITS_TEST, s) for s in ("train", "test"))
    train_images, train_labels = images[train.start : train.stop], labels[train.start : train.stop]

    steps = args.epochs * (len(train_images) // args.batch_size)
    model = DigitsNet()
    optimizer = optax.adamw(
        optax.cosine_decay_schedule(args.lr, steps), weight_decay=args.weight_decay
    )
    params = model.init(jax.random.key(args.seed), jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 1)))[
        "params"
    ]
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, batch, batch_labels):
        def loss_fn(params):
            logits = classify({"params": params}, batch)[1]
            return optax.softmax_cross_entropy_with_integer_labels(logits, batch_labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng(args.seed)
    for epoch in range(args.epochs):
        order = rng.permutation(len(train_images))
        shifts = rng.integers(-2, 3, (len(order), 2))
        losses = []
        for start in range(0, len(order) - args.batch_size + 1, args.batch_size):
            rows = order[start : start + args.batch_size]
            batch = np.stack(
                [
                    shift(train_images[i], *shifts[j])
                    for j, i in zip(range(start, start + len(rows)), rows)
                ]
            )
            params, opt_state, loss = step(params, opt_state, batch, train_labels[rows])
            losses.append(float(loss))
        if (epoch + 1) % 10 == 0:
            print(f"epoch {epoch + 1}: loss {np.mean(losses):.4f}")

    params = unit_scale_features(params, classify({"params": params}, train_images)[0])
    accuracy = {}
    for size in (32, 64):
        held_out = digits_images(size, 1)[test.start : test.stop]
        predictions = np.argmax(
            np.asarray(jax.jit(classify)({"params": params}, held_out)[1]), axis=1
        )
        accuracy[f"test_accuracy_{size}"] = float(
            np.mean(predictions == labels[test.start : test.stop])
        )
    print(
        f"held-out accuracy ({DIGITS_TEST} digits): "
        + ", ".join(f"{k}: {v:.4f}" for k, v in accuracy.items())
    )
    if min(accuracy.values()) < MIN_ACCURACY:
        print(
            f"error: held-out accuracy below {MIN_ACCURACY:.0%}; weights not written",
            file=sys.stderr,
        )
        return 1
    record = {
        **{k: round(v, 4) for k, v in accuracy.items()},
        "seed": args.seed,
        "epochs": args.epochs,
        "trained_by": "scripts/train_digits_classifier.py",
    }
    metadata = {
        "jaxgan": json.dumps(record, sort_keys=True)
    }  # one key: the file is the same bytes every run
    weights = {k: np.asarray(v, np.float32) for k, v in flat_weights({"params": params}).items()}
    with atomic_path(out) as temporary:
        save_file(weights, str(temporary), metadata=metadata)
    count = sum(v.size for v in weights.values())
    print(
        json.dumps(
            {
                "out": str(out),
                "parameters": int(count),
                "seconds": round(time.perf_counter() - started, 1),
                **accuracy,
            }
        )
    )
    return 0


def unit_scale_features(params, features):
    """Rescale the feature layer to unit root-mean-square on the training digits, the classifier
    unchanged.

    ReLU is positively homogeneous, so dividing `dense_0` by s and multiplying `dense_1`'s kernel by
    s leaves the logits as they were; FID and KID values then have a scale independent of training.
    """
    import numpy as np

    scale = float(np.sqrt(np.mean(np.square(np.asarray(features, np.float64)))))
    dense_0, dense_1 = params["dense_0"], params["dense_1"]
    return {
        **params,
        "dense_0": {"kernel": dense_0["kernel"] / scale, "bias": dense_0["bias"] / scale},
        "dense_1": {"kernel": dense_1["kernel"] * scale, "bias": dense_1["bias"]},
    }


def shift(image, dy: int, dx: int):
    """Move an (H, W, C) image by (dy, dx) pixels, filling with black (the digits' background)."""
    import numpy as np

    moved = np.zeros_like(image)
    height, width = image.shape[:2]
    moved[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = image[
        max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)
    ]
    return moved


if __name__ == "__main__":
    sys.exit(main())
