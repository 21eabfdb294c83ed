"""Diagnostic: frozen features with an extended vocabulary (new rows = mean of old sub-tokens, untrained)."""
import sys, time, random, torch, numpy as np
from lowres_adapters.data.packs import load_pack_data
from lowres_adapters.models import DEFAULT_MODEL, load_base_model
from lowres_adapters.training.recipes.task import TaskOptions, evaluation_examples
from lowres_adapters.training.task_features import collate, encode_examples
from lowres_adapters.training.vocabulary import extend_vocabulary, tokens_per_character
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.metrics import f1_score
N, L, NTRAIN = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
data = load_pack_data("dzo")
task = data.tasks["help_module"]
test = evaluation_examples(task, TaskOptions(max_eval_examples=400))
train = random.Random(0).sample(list(task.splits["train"]), NTRAIN)
model, tok = load_base_model(DEFAULT_MODEL); model.eval()
t = time.time()
if N:
    ext = extend_vocabulary(model, tok, [e.text for e in data.text["train"]], N)
    tok = ext.tokenizer
print("extend", N, time.time() - t, "tokens/char", tokens_per_character(tok, [e.text for e in test]), flush=True)
labels = list(task.labels)
def feats(examples):
    enc = encode_examples("sequence_classification", examples, tok, labels, L)
    out = []; t = time.time()
    for s in range(0, len(enc), 16):
        b = collate(enc[s:s+16], tok.pad_token_id)
        with torch.no_grad():
            hs = model.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], output_hidden_states=True).hidden_states
        m = b["attention_mask"].unsqueeze(-1).float()
        out.append(torch.stack([(h.float()*m).sum(1)/m.sum(1) for h in hs], 1))
    print("features", len(examples), time.time()-t, "mean tokens", np.mean([len(e.input_ids) for e in enc]), flush=True)
    return torch.cat(out).numpy(), np.array([e.targets["labels"] for e in enc])
Xtr, ytr = feats(train); Xte, yte = feats(test)
np.savez(f"runs/diagnosis/vfeat-{N}-{L}-{NTRAIN}.npz", Xtr=Xtr, ytr=ytr, Xte=Xte, yte=yte)
for layer in (0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30):
    sc = StandardScaler().fit(Xtr[:, layer])
    for C in (0.01, 0.1, 1.0):
        clf = LogisticRegression(C=C, class_weight="balanced", max_iter=1000).fit(sc.transform(Xtr[:, layer]), ytr)
        p = clf.predict(sc.transform(Xte[:, layer]))
        print(N, L, NTRAIN, "layer", layer, "C", C, "macroF1 %.1f acc %.1f" % (100*f1_score(yte, p, average="macro"), 100*(p==yte).mean()), flush=True)
