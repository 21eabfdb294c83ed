"""Simulate the recipe's head on cached frozen features: which head settings learn in few steps."""
import sys, numpy as np, torch
from sklearn.metrics import f1_score
from lowres_adapters.training.heads import HeadConfig, TaskHead, balanced_class_weights
d = np.load("runs/diagnosis/feat-64-1600.npz")
layer = int(sys.argv[1]) if len(sys.argv) > 1 else 30
Xtr, ytr, Xte, yte = (torch.tensor(d["Xtr"][:, layer]), torch.tensor(d["ytr"]), torch.tensor(d["Xte"][:, layer]), d["yte"])
def run(steps, lr, layers, n, seed=1, wd=0.01, bs=16, dropout=0.1):
    torch.manual_seed(seed)
    head = TaskHead(HeadConfig(num_labels=8, hidden_size=Xtr.shape[1], layers=layers, dropout=dropout))
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=wd)
    w = balanced_class_weights(ytr[:n].tolist(), 8)
    g = torch.Generator().manual_seed(seed)
    one = torch.ones(bs, 1, dtype=torch.long)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, 0.05 * steps)) * max(0.0, 1 - s / steps))
    for s in range(steps):
        rows = torch.randint(n, (bs,), generator=g)
        loss = head.loss(head(Xtr[rows].unsqueeze(1), one), {"labels": ytr[rows]}, w)
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    head.normalizer.set_statistics(Xtr[:256])
    head.eval()
    with torch.no_grad():
        p = head(Xte.unsqueeze(1), torch.ones(len(Xte), 1, dtype=torch.long)).argmax(-1).numpy()
    return 100 * f1_score(yte, p, average="macro")
for steps, n in ((40, 640), (150, 1600), (400, 1600)):
    for layers in (1, 2):
        for lr in (1e-3, 3e-3, 1e-2, 3e-2):
            r = [run(steps, lr, layers, n, seed) for seed in (1, 2, 3)]
            print(f"layer {layer} steps {steps} n {n} head_layers {layers} lr {lr}: {np.mean(r):.1f} ± {np.std(r):.1f}", flush=True)
