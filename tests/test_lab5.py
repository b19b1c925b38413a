"""Lab 5: references against closed forms, the numbers the lab states, and checks against slips."""

import math

import pytest
import torch
from torch import nn

from autograder import identity, lab5
from autograder.kernel import CheckFailed
from course.data import thermometer


def sgd_losses(seed, steps, optimizer="SGD", zero_grad=True):
    return lab5.train_reference(optimizer, 1e-3, steps, zero_grad, seed)


def test_thermometer_data_is_the_curriculum_data():
    X, y = thermometer()
    assert X.shape == (11, 2) and y.shape == (11,)
    assert X[:, 0].tolist()[:4] == [0.5, 14.0, 15.0, 28.0] and X[:, 1].tolist() == [1.0] * 11
    assert y[-1].item() == pytest.approx(68.4)


@pytest.mark.slow
def test_training_numbers_stated_by_the_lab():
    with_reset, without = sgd_losses(0, 5000), sgd_losses(0, 5000, zero_grad=False)
    assert 2800 < with_reset[0] < 3000 and f"{with_reset[-1]:.0f}" == "26"
    assert next(k for k, v in enumerate(without) if math.isnan(v)) == 198
    assert f"{sgd_losses(3, 5000)[-1]:.0f}" == "168"
    assert f"{sgd_losses(0, 5000, optimizer='Adam')[-1]:.0f}" == "11"
    model = lab5.seeded_model(3)
    assert (model[:2](thermometer()[0]) > 0).sum(0).tolist() == [1, 0]


@pytest.mark.slow
def test_gradient_norms_stated_by_the_nan_notebook():
    def norms(zero_grad):
        model = lab5.seeded_model(0)
        X, y = thermometer()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        out = []
        for _ in range(197):  # the last finite gradients before the nan at step 198
            if zero_grad:
                optimizer.zero_grad()
            nn.functional.mse_loss(model(X).squeeze(1), y).backward()
            out.append(math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters())))
            optimizer.step()
        return out

    bounded, runaway = norms(True), norms(False)
    assert all(100 < v < 3000 for v in bounded[30:])
    assert max(runaway) / runaway[0] > 1e10


@pytest.mark.slow
def test_without_zero_grad_every_seed_reaches_nan_within_1000_steps():
    for seed in range(10):
        assert any(math.isnan(v) for v in sgd_losses(seed, 1000, zero_grad=False)), seed


def test_notebook_models_match_the_graders_seeded_models():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), lab5.seeded_model(3).parameters()))


@pytest.mark.parametrize("student", [f"s{i}" for i in range(40)] + ["ada"])
def test_hand_references_and_slips(device, student):
    n = lab5.student_numbers(student)
    r = lab5.sgd_step_reference(n["w"], n["b"], n["x1"], n["y1"], n["x2"], n["y2"], n["lr"])
    res = [n["w"] * x + n["b"] - y for x, y in ((n["x1"], n["y1"]), (n["x2"], n["y2"]))]
    assert r["mse"] == pytest.approx((res[0] ** 2 + res[1] ** 2) / 2)
    assert r["dmse_dw"] == pytest.approx(res[0] * n["x1"] + res[1] * n["x2"])
    z, t = n["logits"], n["target"]
    ce = lab5.cross_entropy_reference(z, t)
    assert ce["ce_loss"] == pytest.approx(math.log(sum(math.exp(v) for v in z)) - z[t])
    h = 1e-6
    for i in range(3):
        up, down = list(z), list(z)
        up[i] += h
        down[i] -= h
        numeric = (lab5.cross_entropy_reference(up, t)["ce_loss"] - lab5.cross_entropy_reference(down, t)["ce_loss"]) / (2 * h)
        assert ce[f"ce_grad_{i}"] == pytest.approx(numeric, abs=1e-8)
    for expected in (lab5.step_expected(n), lab5.ce_expected(n)):
        assert lab5.diagnose_all({e.name: float(f"{e.value:.4g}") for e in expected}, expected) == []
        for e in expected:
            for slip, wrong in e.slips.items():
                assert slip in e.diagnose(float(f"{wrong:.4g}"))


@pytest.fixture
def ada(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv(identity.STUDENT_ENV, "ada")


def loop(order="zero,backward,step", squeeze=True):
    def train(model, X, y, optimizer, steps, zero_grad=True):
        losses = []
        for _ in range(steps):
            out = model(X).squeeze(1) if squeeze else model(X)
            if zero_grad and order.startswith("zero"):
                optimizer.zero_grad()
            loss = nn.functional.mse_loss(out, y)
            loss.backward()
            if zero_grad and order == "backward,zero,step":
                optimizer.zero_grad()
            optimizer.step()
            losses.append(loss.item())
        return losses
    return train


@pytest.mark.parametrize("hidden", [False, True])
def test_train_check(ada, device, hidden):
    lab5.check_train({"train": loop()}, hidden=hidden)
    with pytest.raises(CheckFailed, match="runs after backward"):
        lab5.check_train({"train": loop("backward,zero,step")}, hidden=hidden)
    with pytest.raises(CheckFailed, match="broadcasts"):
        lab5.check_train({"train": loop(squeeze=False)}, hidden=hidden)


def test_train_check_names_missing_zero_grad(ada):
    with pytest.raises(CheckFailed, match="never cleared"):
        lab5.check_train({"train": lambda m, X, y, o, s, zero_grad=True: loop()(m, X, y, o, s, zero_grad=False)})


def test_model_check(ada):
    lab5.check_model({"make_model": lambda: nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))})
    with pytest.raises(CheckFailed, match="expected Linear"):
        lab5.check_model({"make_model": lambda: nn.Sequential(nn.Linear(2, 1))})
    with pytest.raises(AssertionError, match="nn.Module"):
        lab5.check_model({"make_model": lambda: "model"})
