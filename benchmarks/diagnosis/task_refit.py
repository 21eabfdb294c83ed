"""Diagnostic: refit the recipe head full batch on cached frozen rows vs logistic regression.

Run after task_layers.py (needs runs/diagnosis/feat-64-1600.npz); see docs/transfer.md.
"""
import sys, numpy as np, torch
from sklearn.metrics import f1_score
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from lowres_adapters.training.heads import HeadConfig, TaskHead, balanced_class_weights
d = np.load("runs/diagnosis/feat-64-1600.npz")
layer = 30
Xtr, ytr, Xte, yte = (torch.tensor(d["Xtr"][:, layer]), torch.tensor(d["ytr"]), torch.tensor(d["Xte"][:, layer]), d["yte"])
def refit(n, steps, lr, wd, layers, seed=1, dropout=0.1):
    torch.manual_seed(seed)
    head = TaskHead(HeadConfig(num_labels=8, hidden_size=Xtr.shape[1], layers=layers, dropout=dropout))
    head.normalizer.set_statistics(Xtr[:n])
    head.normalizer.eval()
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=wd)
    w = balanced_class_weights(ytr[:n].tolist(), 8)
    one = torch.ones(n, 1, dtype=torch.long)
    for s in range(steps):
        head.train(); head.normalizer.eval()
        loss = head.loss(head(Xtr[:n].unsqueeze(1), one), {"labels": ytr[:n]}, w)
        opt.zero_grad(); loss.backward(); opt.step()
    head.eval()
    with torch.no_grad():
        p = head(Xte.unsqueeze(1), torch.ones(len(Xte), 1, dtype=torch.long)).argmax(-1).numpy()
    return 100 * f1_score(yte, p, average="macro")
for n in (512, 1600):
    sc = StandardScaler().fit(d["Xtr"][:n, layer])
    clf = LogisticRegression(C=0.1, class_weight="balanced", max_iter=1000).fit(sc.transform(d["Xtr"][:n, layer]), d["ytr"][:n])
    print(n, "LR C0.1 %.1f" % (100 * f1_score(yte, clf.predict(sc.transform(d["Xte"][:, layer])), average="macro")), flush=True)
    for layers in (2,):
        for lr, wd, steps in ((3e-3, 0.01, 150), (1e-3, 0.01, 300)):
            r = [refit(n, steps, lr, wd, layers, s) for s in (1,)]
            print(n, f"head_layers {layers} lr {lr} wd {wd} steps {steps}: {np.mean(r):.1f}", flush=True)
