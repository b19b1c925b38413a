"""Rules on how an answer cell is written, checked on its code before it runs.

**A formula is a closed form** (`closed_form`). A formula is a derivation written down: the
graded function computes its result straight from its inputs, by arithmetic and `math`, one
assignment after another, with `if` for the pieces of a piecewise function. So its body may hold
only assignments, `if`/`else`, conditional expressions, `return` and `raise`, over the
function's own inputs and names it assigned, with calls of `math` functions and `abs`, `min`,
`max`, `float` and `int`. No loops or comprehensions, no nested functions, lambdas or classes,
no other imports, no complex numbers, no containers of numbers (a tuple is for returning or
unpacking several results), no subscripts, no recursion. The cell holds the function and
`import math` (or `from math import ...`) and nothing else. A function that adds a small step
to an input (x + 1e-6, x * (1 + 1e-8)) and divides by one evaluates the forward pass at shifted
inputs: a numerical derivative, named as such; so is one that moves any value by +c and by −c
and divides by 2c, whatever the size of c (a centred difference is exact for a square).

**Without autograd means without it** (`without_autograd`). A function the task says to write
without autograd reaches no part of it: no attribute or import that names gradients or backward
(`.backward()`, `.grad`, `torch.autograd`, `torch.func`, `enable_grad`, `aten.*_backward`...)
but what a `torch.autograd.Function` of its own is written with (the base class,
`ctx.save_for_backward`, `ctx.saved_tensors`),
nothing private (`_C`, `__dict__`), no `getattr`/`eval`-like builtins, and no name the cell does
not define besides torch, math and the task's own functions (a helper elsewhere in the notebook
could do anything).

**An engine is plain Python** (`engine`). Lab 6's autograd engine is classes and functions over
floats, with `math` and nothing else: no other import, no complex numbers (a complex step is a
numerical derivative), no constant smaller than a finite-difference step, no `global`, no name
or attribute with two underscores on each side but the methods it defines, and none of the
builtins that reach past the cell (`open`, `eval`, `exec`, `getattr`...).

This module is standard library only: the formula runner (`course.formulas`) prepends its
source to the code it runs in a Python started with `-I -S`, so the student's kernel and the
grader's sandbox apply the same rules with the same words.
"""

import ast

CALLABLE_BUILTINS = frozenset({"abs", "min", "max", "float", "int"})
EXCEPTIONS = frozenset({"NotImplementedError", "ValueError", "ZeroDivisionError", "ArithmeticError"})
SMALL_STEP = 1e-3  # a constant below this, added to an input, is a finite-difference step
CLOSED_FORM = ("A closed form computes each result from the inputs by arithmetic, `math` functions and the "
               "chain rule, one assignment after another, with `if` for the pieces of a piecewise function: "
               "no loops, comprehensions, lists or dicts, complex numbers, helper functions or other imports.")
NUMERICAL = ("evaluates the forward pass at shifted inputs ({step}) and divides by the step: that is a numerical "
             "derivative, which estimates the gradient instead of deriving it. Work out each local derivative "
             "and multiply them along the path instead.")

STATEMENTS = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.If, ast.Return, ast.Raise, ast.Pass, ast.Expr)
EXPRESSIONS = (ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Name, ast.Constant, ast.Call,
               ast.Attribute, ast.Tuple, ast.operator, ast.unaryop, ast.boolop, ast.cmpop, ast.expr_context,
               ast.keyword)
WHY_NOT = {ast.For: "a loop", ast.While: "a loop", ast.AsyncFor: "a loop", ast.ListComp: "a comprehension",
           ast.SetComp: "a comprehension", ast.DictComp: "a comprehension", ast.GeneratorExp: "a comprehension",
           ast.Lambda: "a lambda", ast.FunctionDef: "a nested function", ast.AsyncFunctionDef: "a nested function",
           ast.ClassDef: "a class", ast.List: "a list", ast.Dict: "a dict", ast.Set: "a set",
           ast.Subscript: "a subscript (indexing a container)", ast.Import: "an import inside the function",
           ast.ImportFrom: "an import inside the function", ast.NamedExpr: "an assignment expression (:=)",
           ast.Starred: "unpacking with *", ast.JoinedStr: "an f-string", ast.Try: "try/except",
           ast.With: "a with block", ast.Global: "a global declaration", ast.Nonlocal: "a nonlocal declaration",
           ast.Delete: "del", ast.Yield: "yield", ast.Await: "await"}


def small(number: float | None) -> bool:
    """Whether a number is a finite-difference step: not zero, smaller than SMALL_STEP."""
    return number is not None and 0 < abs(number) < SMALL_STEP


class BrokenRule(Exception):
    """The cell breaks the rule; the message says where and how. `numerical`: the break is a
    finite-difference step (the cell estimates instead of derives)."""

    def __init__(self, message: str, numerical: bool = False):
        super().__init__(message)
        self.numerical = numerical


def parsed(source: str) -> ast.Module:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise BrokenRule(f"the cell does not parse ({type(exc).__name__}: {exc})") from None


def closed_form(source: str, function: str) -> None:
    """Raise BrokenRule unless `source` is a cell whose function `function` is a closed form."""
    tree = parsed(source)
    try:
        check_tree(tree, function)
    except RecursionError:
        raise BrokenRule("the cell is nested too deeply to read") from None


def check_tree(tree: ast.Module, function: str) -> None:
    graded = next((node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == function), None)
    if graded is None:
        raise BrokenRule(f"the cell does not define the function `{function}` with `def`")
    math_names = {"math"}
    for node in tree.body:
        if node is graded:
            continue
        if isinstance(node, ast.Import) and [a.name for a in node.names] == ["math"] and not node.names[0].asname:
            continue
        if isinstance(node, ast.ImportFrom) and node.module == "math" and not node.level:
            math_names |= {a.asname or a.name for a in node.names if a.name != "*"}
            if all(a.name != "*" for a in node.names):
                continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue
        raise BrokenRule(f"line {node.lineno}: the cell may hold only `import math` and the function "
                            f"`{function}`, not {describe(node)}")
    FunctionRule(graded, math_names).check()


def describe(node: ast.AST) -> str:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return "another import"
    if isinstance(node, ast.FunctionDef):
        return f"another function (`{node.name}`)"
    return WHY_NOT.get(type(node), f"a {type(node).__name__} statement")


class FunctionRule:
    """The rule on the graded function's body."""

    def __init__(self, fn: ast.FunctionDef, math_names: set[str]):
        self.fn, self.math_names = fn, math_names
        args = fn.args
        if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs or args.defaults or fn.decorator_list:
            raise BrokenRule(f"line {fn.lineno}: `{fn.name}` takes its inputs as plain parameters "
                                "(no defaults, *args, **kwargs, keyword-only parameters or decorators)")
        self.inputs = {a.arg for a in args.args}
        self.known = set(self.inputs)
        self.constants: dict[str, float] = {}  # local names bound to a number (a step, a factor)
        self.shifts: list[ast.BinOp] = []  # an input moved by a small step
        self.by_step = False  # a division by a small step (or a product with its reciprocal)
        self.moves: dict[str, list[tuple[float, ast.BinOp]]] = {}  # name: (signed step, where), any size
        self.divisors: set[float] = set()  # constants divided by (or multiplied by the reciprocal of)

    def check(self) -> None:
        for statement in self.fn.body:
            self.statement(statement)
        if self.shifts and self.by_step:  # (f(x + h) - f(x - h)) / (2 * h), in whatever spelling
            raise BrokenRule(f"line {self.shifts[0].lineno}: `{self.fn.name}` "
                                + NUMERICAL.format(step=ast.unparse(self.shifts[0])), numerical=True)
        if (where := self.moved_both_ways()) is not None:  # exact for a square whatever the step
            raise BrokenRule(f"line {where.lineno}: `{self.fn.name}` " + NUMERICAL.format(step=ast.unparse(where)),
                             numerical=True)

    def moved_both_ways(self) -> ast.BinOp | None:
        """Where a value is moved by +c and by −c and something is divided by 2c (or c): a centred
        difference with a step of any size (a small step is caught by `shifts` alone)."""
        for moves in self.moves.values():
            for step, where in moves:
                if step > 0 and any(abs(other + step) <= 1e-12 * step for other, _ in moves) and any(
                        abs(d - k * step) <= 1e-12 * step for d in self.divisors for k in (1, 2)):
                    return where
        return None

    def fail(self, node: ast.AST, what: str) -> None:
        raise BrokenRule(f"line {getattr(node, 'lineno', self.fn.lineno)}: `{self.fn.name}` uses {what}")

    def statement(self, node: ast.stmt) -> None:
        if not isinstance(node, STATEMENTS):
            self.fail(node, WHY_NOT.get(type(node), f"a {type(node).__name__} statement"))
        if isinstance(node, ast.If):
            self.expression(node.test)
            for inner in node.body + node.orelse:
                self.statement(inner)
            return
        if isinstance(node, ast.Return):
            if node.value is not None:
                self.expression(node.value, tuple_allowed=True)
            return
        if isinstance(node, ast.Raise):
            if node.exc is None or node.cause is not None:
                self.fail(node, "`raise` without an exception, or `raise ... from`")
            self.raised(node.exc)
            return
        if isinstance(node, ast.Expr):
            if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                self.expression(node.value)
            return
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            value = node.value
            if value is None:
                return
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            self.expression(value, tuple_allowed=any(isinstance(t, ast.Tuple) for t in targets))
            for target in targets:
                self.bind(target, value if isinstance(node, ast.Assign) else None)

    def bind(self, target: ast.expr, value: ast.expr | None) -> None:
        names = target.elts if isinstance(target, ast.Tuple) else [target]
        for name in names:
            if not isinstance(name, ast.Name):
                self.fail(name, WHY_NOT.get(type(name), "an assignment to something other than a name"))
            self.known.add(name.id)
            number = self.constant(value) if value is not None and not isinstance(target, ast.Tuple) else None
            if number is None:
                self.constants.pop(name.id, None)
            else:
                self.constants[name.id] = number

    def raised(self, node: ast.expr) -> None:
        """What follows `raise`: an exception named by its class, with constant arguments."""
        exception = node.func if isinstance(node, ast.Call) else node
        arguments = node.args if isinstance(node, ast.Call) else []
        if not (isinstance(exception, ast.Name) and exception.id in EXCEPTIONS
                and not getattr(node, "keywords", None) and all(isinstance(a, ast.Constant) for a in arguments)):
            self.fail(node, f"`raise` of something other than {', '.join(sorted(EXCEPTIONS))} with a message")

    def expression(self, node: ast.expr, tuple_allowed: bool = False) -> None:
        inside = list(ast.walk(node))
        for inner in inside:  # what kind of code it is, first; then what it names and calls
            if isinstance(inner, (ast.Tuple, ast.List)) and inner is node and tuple_allowed:
                continue  # several results, returned or unpacked
            if isinstance(inner, ast.Tuple):
                if not tuple_allowed or inner is not node:
                    self.fail(inner, "a tuple inside a computation (a tuple only returns or unpacks results)")
            elif not isinstance(inner, EXPRESSIONS):
                self.fail(inner, WHY_NOT.get(type(inner), f"a {type(inner).__name__} expression"))
            if isinstance(inner, ast.Constant) and isinstance(inner.value, complex):
                self.fail(inner, "a complex number")
            if isinstance(inner, ast.Constant) and not isinstance(inner.value, (int, float)):
                self.fail(inner, f"the constant {inner.value!r:.30} (a formula works with numbers)")
        for inner in inside:
            if isinstance(inner, ast.Name) and inner.id not in self.known | self.math_names | CALLABLE_BUILTINS:
                self.fail(inner, f"the name `{inner.id}`, which is neither an input, a name it assigned, nor `math`")
            if isinstance(inner, ast.Attribute) and not (isinstance(inner.value, ast.Name) and inner.value.id == "math"
                                                         and not inner.attr.startswith("_")):
                self.fail(inner, "an attribute other than a function or constant of `math`")
            if isinstance(inner, ast.Call):
                self.call(inner)
            if isinstance(inner, ast.BinOp):
                self.finite_difference(inner)

    def call(self, node: ast.Call) -> None:
        fn = node.func
        allowed = (isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name) and fn.value.id == "math"
                   or isinstance(fn, ast.Name) and fn.id in (self.math_names - {"math"}) | CALLABLE_BUILTINS)
        if not allowed:
            self.fail(node, f"a call of `{ast.unparse(fn)[:40]}` (only `math` functions, abs, min, max, float and int)")
        if node.keywords:
            self.fail(node, "keyword arguments in a call")

    def finite_difference(self, node: ast.BinOp) -> None:
        """Note the two halves of a finite difference: an input moved by a small step (plus or
        minus it, or times 1 plus or minus it), and a division by a small step."""
        divisor = node.right
        product = isinstance(divisor, ast.BinOp) and isinstance(divisor.op, ast.Mult)
        parts = [divisor.left, divisor.right] if isinstance(divisor, ast.BinOp) and product else []
        if isinstance(node.op, ast.Div) and any(small(self.constant(part)) for part in [divisor, *parts]):
            self.by_step = True  # / h, / (2 * h), / (x * h)
        if isinstance(node.op, ast.Div) and (d := self.constant(divisor)):
            self.divisors.add(abs(d))
        factors = (self.constant(node.left), self.constant(node.right))
        if isinstance(node.op, ast.Mult) and any(abs(v or 0) * SMALL_STEP > 1 for v in factors):
            self.by_step = True  # times 1/h
        if isinstance(node.op, ast.Mult):
            self.divisors |= {1 / abs(v) for v in factors if v}
        if isinstance(node.op, (ast.Add, ast.Sub)):
            for side, other, sign in ((node.left, node.right, 1.0), (node.right, node.left, None)):
                step = self.constant(other)
                if isinstance(side, ast.Name) and step and (sign or isinstance(node.op, ast.Add)):
                    signed = step if isinstance(node.op, ast.Add) else -step
                    self.moves.setdefault(side.id, []).append((signed, node))
        if not isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            return
        for side, other in ((node.left, node.right), (node.right, node.left)):
            if isinstance(side, ast.Name) and side.id in self.inputs:
                number = self.constant(other)
                if number is not None and isinstance(node.op, (ast.Mult, ast.Div)):
                    number -= 1
                if small(number):
                    self.shifts.append(node)

    def constant(self, node: ast.expr) -> float | None:
        """The value of an expression of numbers alone (1e-6, 2 * 1e-5, 1 + h where h = 1e-8), else None."""
        if isinstance(node, ast.Name):
            return self.constants.get(node.id)
        if not all(isinstance(n, (ast.Constant, ast.BinOp, ast.UnaryOp, ast.operator, ast.unaryop, ast.Name, ast.Load))
                   for n in ast.walk(node)):
            return None
        names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        if not names <= set(self.constants):
            return None
        if any(isinstance(n, ast.Constant) and not isinstance(n.value, (int, float)) for n in ast.walk(node)):
            return None
        if any(isinstance(n, ast.Pow) for n in ast.walk(node)):
            return None  # 10 ** 10 ** 10 would be evaluated here
        try:
            value = eval(compile(ast.Expression(node), "<step>", "eval"),
                         {"__builtins__": {}, **{name: self.constants[name] for name in names}})
        except Exception:
            return None
        return float(value) if isinstance(value, (int, float)) else None


# ---------------------------------------------------------------- an engine

ENGINE_RULE = ("An engine cell is plain Python: classes, functions and arithmetic on floats, with `import math` "
               "and nothing else. The grader runs it by itself with Python's standard library, on graphs you do "
               "not see, and compares every gradient with autograd's.")
REACHES_OUT = frozenset({"open", "eval", "exec", "compile", "globals", "locals", "vars", "getattr", "setattr",
                         "delattr", "breakpoint", "input", "exit", "quit", "help", "memoryview", "complex"})
INTERNALS = frozenset({"__builtins__", "__import__", "__class__", "__dict__", "__globals__", "__subclasses__",
                       "__loader__", "__spec__", "__code__", "__closure__"})  # never an engine's own, even if assigned


def engine(source: str) -> None:
    """Raise BrokenRule unless `source` is an engine cell: plain Python with `math` alone."""
    tree = parsed(source)
    defined = {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    defined |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    defined -= INTERNALS
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 1)
        if isinstance(node, ast.Import) and any(alias.name != "math" for alias in node.names):
            raise BrokenRule(f"line {line}: the cell imports `{node.names[0].name}`; an engine imports `math` only")
        if isinstance(node, ast.ImportFrom) and (node.module != "math" or node.level):
            raise BrokenRule(f"line {line}: the cell imports from `{node.module}`; an engine imports `math` only")
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            raise BrokenRule(f"line {line}: {WHY_NOT[type(node)]}; keep state on the objects")
        if isinstance(node, ast.Constant) and isinstance(node.value, complex):
            raise BrokenRule(f"line {line}: a complex number (a complex step is a numerical derivative)",
                             numerical=True)
        if isinstance(node, ast.Constant) and isinstance(node.value, float) and small(node.value):
            raise BrokenRule(f"line {line}: the constant {node.value!r}, a finite-difference step: an engine "
                             "applies each operation's local rule, it never nudges an input", numerical=True)
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
        if name in REACHES_OUT:
            raise BrokenRule(f"line {line}: the cell uses `{name}`, which an engine does not need")
        if name and name.startswith("__") and name.endswith("__") and name not in defined:
            raise BrokenRule(f"line {line}: the cell uses `{name}`; write the methods of your class, "
                             "not Python's internals")


# ---------------------------------------------------------------- without autograd

AUTOGRAD_RULE = ("This task is done without autograd: compute each derivative from the forward pass's values "
                 "with tensor operations. Everything the function uses must be in its own cell (torch, math and "
                 "the task's own functions aside).")
AUTOGRAD_WORDS = ("grad", "backward", "jacobian", "hessian", "vjp", "jvp")  # in an attribute or import: autograd
AUTOGRAD_MODULES = frozenset({"func", "functorch", "autograd"})
SWITCHES_IT_OFF = frozenset({"no_grad", "inference_mode"})  # named after gradients, but they only disable them
MODULES = frozenset({"torch", "math", "nn", "F"})  # what the labs' setup cells import
FUNCTION_API = frozenset({"save_for_backward", "saved_tensors"})  # what a Function's forward and backward use
SAFE_BUILTINS = frozenset({"len", "range", "zip", "enumerate", "float", "int", "bool", "abs", "min", "max", "sum",
                           "round", "list", "tuple", "dict", "isinstance", "print", "sorted", "reversed", "any",
                           "all", "map", "staticmethod", "ValueError", "TypeError", "RuntimeError",
                           "NotImplementedError"})


def without_autograd(source: str, functions: list[str], may_call: list[str] = ()) -> None:
    """Raise BrokenRule unless the cell `source` defines `functions` and reaches no part of
    autograd, nor any name it does not define but torch, math and `may_call`."""
    tree = parsed(source)
    defined = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    missing = [name for name in functions if name not in defined]
    if missing:
        raise BrokenRule(f"the cell does not define the function `{missing[0]}` with `def`")
    try:
        nodes = list(ast.walk(tree))
    except RecursionError:
        raise BrokenRule("the cell is nested too deeply to read") from None
    nodes = [node for node in nodes if id(node) not in function_api(nodes)]
    bound = set(MODULES) | set(may_call) | SAFE_BUILTINS
    for node in nodes:
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
    for node in sorted(nodes, key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0),
                                             getattr(n, "end_col_offset", 0))):  # as read, innermost first
        line = getattr(node, "lineno", 1)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            module = node.module or "" if isinstance(node, ast.ImportFrom) else ""
            names = [module] * bool(module) + [f"{module}.{a.name}" if module else a.name for a in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] not in ("torch", "math") or reaches_autograd(parts[1:]):
                    raise BrokenRule(f"line {line}: the cell imports `{name}`")
        elif isinstance(node, ast.Attribute) and (node.attr.startswith("_") or reaches_autograd([node.attr])):
            raise BrokenRule(f"line {line}: the cell uses `.{node.attr}`")
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in bound:
            raise BrokenRule(f"line {line}: the cell uses `{node.id}`, which it does not define")
        elif isinstance(node, ast.Name) and node.id.startswith("__"):
            raise BrokenRule(f"line {line}: the cell uses `{node.id}`")


def function_api(nodes: list[ast.AST]) -> set[int]:
    """The ids of the attribute nodes by which a cell writes its own `torch.autograd.Function`
    (its base class, `ctx.save_for_backward`, `ctx.saved_tensors`): they name autograd, but its
    backward is the cell's own code, read like the rest."""
    spelled = set()
    for node in nodes:
        if isinstance(node, ast.Attribute) and (node.attr in FUNCTION_API
                                                or ast.unparse(node) == "torch.autograd.Function"):
            spelled |= {id(node), id(node.value)} if node.attr not in FUNCTION_API else {id(node)}
    return spelled


def reaches_autograd(names: list[str]) -> bool:
    """Whether attribute or module names lead into autograd (.backward, .grad, torch.func...)."""
    return any(name in AUTOGRAD_MODULES or name.startswith("_") or any(word in name.lower() for word in AUTOGRAD_WORDS)
               for name in names if name not in SWITCHES_IT_OFF)
