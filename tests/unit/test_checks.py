"""Test the tests: right answers in any reasonable form pass, every known slip fails by name,
and a test cell's verdict (kit in the kernel, grader out of it) agrees with what it should say."""

import warnings

import pytest
import torch

from autograder.labs import lab4 as grader
from autograder.labs import lab4b as coded
from course import identity
from course import checks as course_checks
from course import lab2
from course import lab4 as kit
from course import lab4b as coded_kit
from course.answers import LINE_WIDTH, Unanswered, diagnose_all
from autograder.labs.checks import HIDDEN_CALL
from course.checks import CheckFailed, describe_call

from helpers import NUMBERED_LABS, SEED, as_cell, run_test_cell

STUDENTS = [f"student{i}" for i in range(60)] + ["ada", "zoë", "a.b-c"]


def rounded(value: float) -> float:
    """What a student types: 4 significant digits."""
    return float(f"{value:.4g}")


@pytest.mark.parametrize("student", STUDENTS)
def test_task2_right_answers_rounded_to_4_digits_pass_and_each_slip_fails_by_name(student):
    group = kit.task2_answers(**task2_numbers(student))
    answers = {e.name: rounded(e.value) for e in group}
    assert diagnose_all(answers, group, student) == []
    for e in group:
        for slip, wrong in e.slips.items():
            message = e.diagnose(rounded(wrong))
            assert message is not None and slip in message, (e.name, slip)
        assert e.diagnose(-rounded(e.value)) is not None  # a sign slip never passes


def test_textbook_numbers_hide_the_sigmoid_slip_so_grading_uses_per_student_numbers():
    """On x1=4, w1=0.5, w2=0.2 the slip gives 0.24 against 0.2403: within rounding of each other."""
    (dyhat,) = [e for e in kit.task2_answers(**kit.WORKED_NUMBERS) if e.name == "dyhat_dm2"]
    assert not dyhat.separated()
    assert kit.student_numbers("ada") != kit.WORKED_NUMBERS


def test_squared_error_slips_are_named():
    """Lab 2's Task 4 on the textbook numbers x = 4, y = 1, w = 0.5."""
    backward = [e for e in lab2.squared_error_answers(4.0, 1.0, 0.5)
                if e.name in ("dloss_ds", "ds_dyhat", "dyhat_dw", "dloss_dw")]
    answers = {"dloss_ds": 2, "ds_dyhat": 1, "dyhat_dw": 4, "dloss_dw": 4}
    message, numbers = diagnose_all(answers, backward, "ada")
    assert "forgot the factor 2" in message and "x = 4, y = 1, w = 0.5" in numbers
    answers["dloss_dw"] = -8
    assert "wrong sign" in diagnose_all(answers, backward, "ada")[0]


def task2_numbers(student: str) -> dict:
    """A student's Task 2 inputs (their numbers hold Task 1's too)."""
    numbers = kit.student_numbers(student)
    return {k: numbers[k] for k in ("x1", "w1", "w2", "y")}


def right_task2_namespace(student):
    return {k: rounded(v) for k, v in kit.task2_values(**task2_numbers(student)).items()}


def test_value_checks_accept_tensors_and_numpy(student):
    np = pytest.importorskip("numpy")
    ns = right_task2_namespace(student)
    ns["m1"] = torch.tensor(ns["m1"], requires_grad=True) * 1
    ns["yhat"] = np.float64(ns["yhat"])
    assert run_test_cell("lab4", "t2_forward", ns) == (None, [])


def test_copied_numbers_fail(student):
    ns = kit.task2_values(**task2_numbers("grace"))
    error, problems = run_test_cell("lab4", "t2_gradients", ns)
    assert isinstance(error, CheckFailed) and "Your numbers, for student id 'ada'" in str(error)
    assert "Your numbers, for student id 'ada'" in problems[-1]


def test_missing_answers_raise_not_implemented(student):
    error, problems = run_test_cell("lab4", "t2_gradients", {"dloss_dw2": 1.0})
    assert isinstance(error, Unanswered) and "`dloss_dw1`" in str(error) and problems
    assert issubclass(Unanswered, NotImplementedError)


def good_train(x, y, w, lr, steps):
    w = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    ws, losses = [], []
    for _ in range(steps):
        loss = (x * w - y) ** 2
        losses.append(loss.item())
        (grad,) = torch.autograd.grad(loss, w)
        with torch.no_grad():
            w.sub_(lr * grad)
        ws.append(w.item())
    return torch.tensor(ws), losses


def accumulating_train(x, y, w, lr, steps):
    w = torch.tensor(float(w), requires_grad=True)
    ws, losses = [], []
    for _ in range(steps):
        loss = (x * w - y) ** 2
        losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            w -= lr * w.grad
        ws.append(w.item())
    return ws, losses


def uphill_train(x, y, w, lr, steps):
    ws, losses = [], []
    for _ in range(steps):
        losses.append((x * w - y) ** 2)
        w = w + lr * 2 * x * (x * w - y)
        ws.append(w)
    return ws, losses


def assert_named(grade_id: str, namespace: dict, named: str) -> None:
    """The cell fails in the kernel, and the kernel's verdict names the mistake."""
    error, _ = run_test_cell("lab4b", grade_id, namespace)
    assert isinstance(error, CheckFailed) and named in str(error), error


def assert_caught_by_hidden_probes(grade_id: str, namespace: dict, said: str = "") -> None:
    """The cell passes in the kernel (visible probes), and the grader fails it on a hidden probe,
    saying `said` and nothing of the hidden inputs."""
    error, problems = run_test_cell("lab4b", grade_id, namespace)
    assert error is None and any(p.startswith(HIDDEN_CALL) and said in p for p in problems), (error, problems)
    check = coded.LAB.checks[grade_id]
    calls = [describe_call(check.called, probe) for probe in check.hidden_probes(SEED)]
    assert not any(call in p for call in calls for p in problems), problems


def memorised(name: str, field: str | None = None):
    """A 'function' that returns the kit's expected visible outputs, whatever it is asked."""
    outputs = coded_kit.check.expected["functions"][name]["outputs"]
    answer = iter([o["right"] if field is None else o["right"][field] for o in outputs] * 10)
    return lambda *args, **kwargs: next(answer)


def test_train_check(student, device):
    assert run_test_cell("lab4b", "t2_train_w", {"train": good_train}) == (None, [])
    assert_named("t2_train_w", {"train": accumulating_train}, "never reset")
    assert_named("t2_train_w", {"train": uphill_train}, "up the gradient")
    ignores_y = {"train": lambda x, y, w, lr, steps: good_train(x, 1.0, w, lr, steps)}
    assert_caught_by_hidden_probes("t2_train_w", ignores_y)
    memorised_run = memorised("train")
    assert_caught_by_hidden_probes("t2_train_w", {"train": lambda **k: tuple(memorised_run().values())})


def by_autograd(x, y, w):
    w = torch.tensor(w, requires_grad=True)
    loss = (x * w - y) ** 2
    loss.backward()
    return loss, w.grad


def test_check_result_check(student, device):
    assert run_test_cell("lab4b", "t1_check_result", {"check_result": by_autograd}) == (None, [])
    flipped = {"check_result": lambda x, y, w: (by_autograd(x, y, w)[0], -by_autograd(x, y, w)[1])}
    assert_named("t1_check_result", flipped, "flipped the sign")
    assert_caught_by_hidden_probes("t1_check_result", {"check_result": lambda x, y, w: by_autograd(x, 1.0, w)},
                                   "does not give what autograd gives")
    error, _ = run_test_cell("lab4b", "t1_check_result", {"check_result": lambda x, y, w: 1.0})
    assert isinstance(error, AssertionError) and "two numbers" in str(error)


def test_a_pytorch_warning_in_student_code_reaches_stdout_not_stderr(student, capfd):
    def noisy(x, y, w):
        w = torch.tensor(float(w), requires_grad=True)
        yhat = x * w
        loss = (yhat - y) ** 2
        loss.backward()
        _ = yhat.grad  # UserWarning: .grad of a non-leaf tensor
        return loss.item(), w.grad.item()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # were the warning to escape the shield, this test would fail
        assert run_test_cell("lab4b", "t1_check_result", {"check_result": noisy}) == (None, [])
    out, err = capfd.readouterr()
    assert err == "" and "does not cost points" in out and "not a leaf" in out


def test_a_warning_raised_at_every_step_is_noted_once_with_its_count(student, capfd):
    def noisy(x, y, w):
        w = torch.tensor(float(w), requires_grad=True)
        for _ in range(50):  # a loop that warns at every step, as a training loop with a size mismatch does
            yhat = x * w
            _ = yhat.grad
        loss = (yhat - y) ** 2
        loss.backward()
        return loss.item(), w.grad.item()

    assert run_test_cell("lab4b", "t1_check_result", {"check_result": noisy}) == (None, [])
    out, err = capfd.readouterr()
    notes = [line for line in out.splitlines() if "does not cost points" in line]
    check = coded.LAB.checks["t1_check_result"]
    runs = [len(check.visible), len(check.hidden_probes(SEED))]  # the cell's two calls: visible, then hidden
    assert err == "" and [note.rsplit("(", 1)[1] for note in notes] == [f"{50 * n} times)" for n in runs]
    assert all("not a leaf" in note for note in notes)


RELU_GRAD, SIGMOID_GRAD = "(z > 0).to(z.dtype)", "torch.sigmoid(z) * (1 - torch.sigmoid(z))"


def activations(relu: str = RELU_GRAD, sigmoid: str = SIGMOID_GRAD, head: str = "") -> dict:
    """A notebook whose answer cell for 2e returns `relu` and `sigmoid` (expressions of z)."""
    source = f"{head}def relu_grad(z):\n    return {relu}\n\n\ndef sigmoid_grad(z):\n    return {sigmoid}\n"
    return as_cell(source, "t3_activation_grads_answer")


def test_activation_checks(student, device):
    assert run_test_cell("lab4b", "t3_activation_grads", activations()) == (None, [])
    assert_named("t3_activation_grads", activations(sigmoid="z * (1 - z)"), "x·(1 − x)")
    assert_named("t3_activation_grads", activations(sigmoid="torch.sigmoid(z)"), "returned σ")
    copied = memorised("activation_grads", "sigmoid_grad")()
    lookup = activations(sigmoid="torch.tensor(OUT if len(z) == 7 else [0.0] * len(z), dtype=z.dtype)",
                         head=f"OUT = {copied!r}\n\n\n")
    assert_caught_by_hidden_probes("t3_activation_grads", lookup, "does not give what autograd gives")
    error, _ = run_test_cell("lab4b", "t3_activation_grads", activations(relu="1.0"))
    assert isinstance(error, AssertionError) and "same shape" in str(error)


def test_relu_slope_at_zero_follows_pytorch(student):
    assert_named("t3_activation_grads", activations(relu="(z >= 0).to(z.dtype)"), "slope 1 at x = 0")


def backward_cell(dsig: str = "sigmoid_grad(m2)", mask: bool = True, factor: str = "2.0", body: str = "") -> dict:
    """A notebook whose answer cell for 2f is a manual backward pass (`body`: in place of its end)."""
    body = body or (f"    d_m2 = {factor} * (torch.sigmoid(m2) - y) * {dsig}\n"
                    f"    d_m1 = d_m2 * w2 * {'relu_grad(m1)' if mask else '1'}\n"
                    "    return torch.outer(d_m1, x), d_m2 * r\n")
    source = ("def manual_backward(x, W1, w2, y):\n    m1 = W1 @ x\n    r = torch.relu(m1)\n    m2 = w2 @ r\n"
              + body)
    return as_cell(source, "t4_manual_backward_answer", **{k: v for k, v in activations().items() if k != "torch"})


def test_manual_backward_checks(student, device):
    assert run_test_cell("lab4b", "t4_manual_backward", backward_cell()) == (None, [])
    cases = [(backward_cell("m2 * (1 - m2)"), "m2·(1 − m2)"), (backward_cell(factor="1.0"), "factor 2"),
             (backward_cell(mask=False), "through the ReLU")]
    for namespace, named in cases:
        assert_named("t4_manual_backward", namespace, named)
    visible = [[o["right"]["dW1"], o["right"]["dw2"]] for o in coded_kit.check.expected["functions"]["manual_backward"]["outputs"]]
    lookup = backward_cell(body=f"    out = {visible!r}[0 if len(x) == 3 else 1]\n"
                                "    return torch.tensor(out[0]), torch.tensor(out[1])\n")
    assert_caught_by_hidden_probes("t4_manual_backward", lookup)


@pytest.mark.parametrize("body, said", [
    ("    W1 = W1.clone().requires_grad_()\n    w2 = w2.clone().requires_grad_()\n"
     "    ((torch.sigmoid(w2 @ torch.relu(W1 @ x)) - y) ** 2).backward()\n    return W1.grad, w2.grad\n",
     "the cell uses `.requires_grad_`"),
    ("    with torch.enable_grad():\n        return manual_backward_by_autograd(x, W1, w2, y)\n",
     "the cell uses `.enable_grad`"),
    ("    return helper(x, W1, w2, y)\n", "the cell uses `helper`, which it does not define"),
    ("    d = torch.ops.aten.sigmoid_backward(torch.ones_like(m2), torch.sigmoid(m2))\n"
     "    return torch.outer(2 * d * w2 * (m1 > 0), x), 2 * d * r\n", "the cell uses `.sigmoid_backward`"),
])
def test_manual_backward_cannot_lean_on_autograd(student, body, said):
    """In the notebook the check says so; the grader reads the answer cell and says the same."""
    namespace = backward_cell(body=body)
    error, problems = run_test_cell("lab4b", "t4_manual_backward", namespace)
    assert isinstance(error, CheckFailed) and said in str(error) and "without autograd" in str(error)
    assert problems and said in problems[0] and "without autograd" in problems[0]


def test_the_grader_reads_the_rule_even_when_the_kernel_check_was_switched_off(student):
    """A kernel whose check never ran the rule (the kit tampered with) publishes right outputs;
    the grader still reads the answer cell and takes the points."""
    namespace = backward_cell(body="    with torch.enable_grad():\n        W1 = W1.clone().requires_grad_()\n"
                                   "        w2 = w2.clone().requires_grad_()\n"
                                   "        loss = (torch.sigmoid(w2 @ torch.relu(W1 @ x)) - y) ** 2\n"
                                   "        return tuple(torch.autograd.grad(loss, (W1, w2)))\n")
    original = course_checks.follows_autograd_rule
    course_checks.follows_autograd_rule = lambda functions, may_call: None
    try:
        error, problems = run_test_cell("lab4b", "t4_manual_backward", namespace)
    finally:
        course_checks.follows_autograd_rule = original
    assert error is None and problems and "the cell uses `.enable_grad`" in problems[0]


def test_identity_in_student_mode(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv(identity.STUDENT_ENV, raising=False)
    monkeypatch.setenv("JUPYTERHUB_USER", "hub-user")
    assert identity.student_id() == ("hub-user", "JUPYTERHUB_USER")
    monkeypatch.setenv(identity.STUDENT_ENV, "ada")
    assert identity.student_id()[0] == "ada"
    monkeypatch.delenv(identity.STUDENT_ENV)
    monkeypatch.delenv("JUPYTERHUB_USER")
    assert identity.student_id()[0] == identity.ANONYMOUS


def test_identity_while_autograding_comes_from_the_submission_folder(monkeypatch, tmp_path):
    folder = tmp_path / "autograded" / "ada" / "lab4"
    folder.mkdir(parents=True)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.delenv(identity.STUDENT_ENV, raising=False)
    monkeypatch.setenv("JUPYTERHUB_USER", "instructor")
    assert identity.student_id()[0] == "ada"
    monkeypatch.setenv(identity.STUDENT_ENV, "grace")
    with pytest.raises(identity.UnknownStudent):
        identity.student_id()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(identity.STUDENT_ENV)
    with pytest.raises(identity.UnknownStudent):
        identity.student_id()


def payload(kind, name, data, hidden=False, lab="lab4"):
    return {"lab": lab, "kind": kind, "name": name, "hidden": hidden, "data": data}


def test_verification_rejects_missing_extra_foreign_or_malformed_payloads():
    lab = grader.LAB
    names = "m1 r m2 yhat s loss"
    right = {k: v for k, v in kit.task2_values(**task2_numbers("ada")).items() if k in names.split()}
    good = payload("values", names, right)
    assert lab.verify_cell("t2_forward", [good], "ada") == []
    assert lab.verify_cell("t2_forward", [], "ada")
    assert lab.verify_cell("t2_forward", [good, good], "ada")
    assert lab.verify_cell("t2_forward", [{**good, "lab": "lab1"}], "ada")
    assert lab.verify_cell("t2_forward", [payload("function", "train", [])], "ada")
    assert lab.verify_cell("t2_forward", [payload("values", names, {**right, "yhat": "x"})], "ada")
    assert lab.verify_cell("t2_forward", [payload("values", names, {**right, "loss": 2 * right["loss"]})], "ada")
    assert lab.verify_cell("no_such_cell", [good], "ada")


def test_hidden_outputs_are_checked_on_the_graders_probes_not_the_notebooks():
    """A kernel that ran the student's function on easier inputs gains nothing: the grader
    pairs the outputs with its own hidden probes."""
    lab = coded.LAB
    visible = [coded.train_reference(**p) for p in lab.checks["t2_train_w"].visible]
    easy = [coded.train_reference(**lab.checks["t2_train_w"].visible[0])] * len(lab.checks["t2_train_w"].hidden_probes())
    problems = lab.verify_cell("t2_train_w", [payload("function", "train", visible, lab="lab4b"),
                                            payload("function", "train", easy, hidden=True, lab="lab4b")], "ada")
    # the grader's own hidden probes have 10 to 30 steps: the easy runs handed over have 60
    assert problems and problems[0].kind == "form" and "visible inputs show the form expected" in problems[0].text


@pytest.mark.parametrize("lab", NUMBERED_LABS)
@pytest.mark.parametrize("student", ["ada", "zoë", "student7"])
def test_answers_worked_on_the_practice_numbers_are_named_as_such(lab, student):
    import importlib

    check = importlib.import_module(f"course.{lab}").check
    mine, practice = check.expected_answers(student), check.expected_answers(identity.ANONYMOUS)
    names = [n for n in mine if mine[n].value != practice[n].value]  # an answer that is the same for everyone is left out
    assert names
    on_practice = {n: practice[n].value for n in names}
    others = check.other_answers(student, names)
    problems = diagnose_all(on_practice, [mine[n] for n in names], student, others)
    assert problems[0].startswith("These are the answers for the practice numbers (student id 'anonymous')")
    right_but_one = {**{n: mine[n].value for n in names}, names[0]: practice[names[0]].value}
    assert "practice numbers" in diagnose_all(right_but_one, [mine[n] for n in names], student, others)[0]
    assert diagnose_all({n: mine[n].value for n in names}, [mine[n] for n in names], student, others) == []
    assert [d for d, _ in check.other_answers(identity.ANONYMOUS, names)] == [d for d, _ in others[1:]]


@pytest.mark.parametrize("lab", NUMBERED_LABS)
@pytest.mark.parametrize("student", ["ada", "zoë", identity.ANONYMOUS])
def test_answers_worked_on_the_labs_worked_example_are_named_as_such(lab, student):
    """Values copied from the lab's prose or observe cells, which use the worked example's numbers."""
    import importlib

    kit = importlib.import_module(f"course.{lab}")
    check = kit.check
    mine = check.expected_answers(student)
    example = check.answers({**check.numbers(student), **kit.WORKED_EXAMPLE})
    names = [n for n in mine if n in example and not mine[n].matches(example[n].value, mine[n].value)]
    assert names, "the worked example must differ from every student's numbers somewhere"
    problems = diagnose_all({n: example[n].value for n in names}, [mine[n] for n in names], student,
                            check.other_answers(student, names))
    assert problems[0].startswith("These are the answers for the lab's worked example (")
    assert diagnose_all({n: mine[n].value for n in names}, [mine[n] for n in names], student,
                        check.other_answers(student, names)) == []


def test_a_failed_check_shows_its_message_wrapped_and_no_traceback_through_the_kit():
    import contextlib
    import io

    from IPython.core.interactiveshell import InteractiveShell

    problem = ("`df_dx` = 0.5 is not right: it is what you get if you used 1 − e² for tanh' instead of "
               "1 − tanh², the derivative of tanh at the point the forward pass reached")
    shell, shown = InteractiveShell.instance(), io.StringIO()
    try:
        with contextlib.redirect_stdout(shown):
            shell.run_cell(f"from course.checks import report\nreport('t4', [{problem!r}, 'b = 2 is not right'], 'ok')")
    finally:
        InteractiveShell.clear_instance()  # later tests run outside IPython
    lines = shown.getvalue().splitlines()
    assert lines[0] == "\x1b[31mCheckFailed\x1b[39m:" and "checks.py" not in shown.getvalue()
    assert all(len(line) <= LINE_WIDTH for line in lines[1:]) and len(lines) > 3
    assert " ".join(" ".join(lines[1:-1]).split()) == f"- {problem}" and lines[-1] == "  - b = 2 is not right"
