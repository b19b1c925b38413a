"""The unit program's gradebook shortcuts (`speedups.Gradebooks`): the same gradebook,
fewer queries, and one engine whose compiled statements serve every database it is pointed at."""

import subprocess
import sys
import textwrap

import pytest

from autograder.pipeline import sandbox

OPENS = textwrap.dedent("""
    import sys
    sys.path.insert(0, {folder!r})
    import speedups
    from nbgrader import api
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    if {patched}:
        speedups.apply("unit")
        speedups.apply("unit")  # a second call changes nothing
    statements = []
    event.listen(Engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    counts, found = [], []
    for path in {paths!r}:
        url = "sqlite:///" + path
        for step in range(4):
            before = len(statements)
            with api.Gradebook(url) as gb:
                if step == 0:
                    gb.add_assignment("lab1")
                    gb.add_student(path.split("/")[-2])
                counts.append(len(statements) - before)
                found.append([s.id for s in gb.students])
        with api.Gradebook(url) as gb:
            found.append(sorted(api.inspect(gb.engine).get_table_names()))
    print(counts)
    print(found)
""")


def opens(tmp_path, patched: bool) -> tuple[list[int], str]:
    """Statements per open of two new gradebooks (four opens each), and what each open found."""
    paths = []
    for name in ("ada", "zoe"):
        (tmp_path / name).mkdir(parents=True)
        paths.append(str(tmp_path / name / "gradebook.db"))
    script = OPENS.format(folder=str(sandbox.UNIT_PROGRAM.parent), patched=patched, paths=paths)
    counts, found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                   check=True).stdout.splitlines()
    return [int(n) for n in counts.strip("[]").split(",")], found


@pytest.mark.slow  # a sweep or a subprocess: `make test` runs it, `make check` does not
def test_each_gradebook_is_made_as_nbgrader_makes_it_and_its_tables_are_checked_once(tmp_path):
    stock, stock_found = opens(tmp_path / "stock", patched=False)
    ours, our_found = opens(tmp_path / "ours", patched=True)
    assert our_found == stock_found and "'ada'" in our_found and "'zoe'" in our_found
    assert "alembic_version" in our_found and "grade_cell" in our_found
    assert ours[0] == stock[0] and ours[4] == stock[4]  # each new database: made exactly as nbgrader makes it
    later = [i for i in range(8) if i % 4]
    assert all(ours[i] < stock[i] / 4 for i in later), (ours, stock)


@pytest.mark.slow  # a sweep or a subprocess: `make test` runs it, `make check` does not
def test_the_warm_service_compiles_the_statements_a_unit_runs(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(sandbox.UNIT_PROGRAM.parent)!r})
        import autograde_unit, speedups, zygote
        from nbgrader import api
        speedups.apply("unit")
        api.get_alembic_version()
        zygote.warm_gradebook(autograde_unit)
        gradebooks = speedups.gradebooks
        assert gradebooks.url is None and gradebooks.engine.pool.checkedout() == 0  # nothing open to fork
        compiled = len(gradebooks.engine._compiled_cache)
        zygote.warm_gradebook(autograde_unit)  # what a unit does, on another database
        print(compiled, len(gradebooks.engine._compiled_cache))
    """)
    env = {"PATH": f"{sandbox.Path(sys.executable).parent}:/usr/bin:/bin"}  # nbgrader runs `alembic`
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path,
                         env=env).stdout.split()
    assert int(out[0]) > 10 and out[0] == out[1]  # every statement of the second run was compiled already
