"""An app for the process tests (tests/test_processes_integration.py): a
process that pushes a numbered beat to every client, and to one chosen
client, from whichever node holds its lease."""

from hpxd.app import Task

task = Task("procs")


@task.function
def add(item, a, b):
    return a + b


@task.function
async def target(item, client_id):
    """The beat process also pushes "just-you" to ``client_id``."""
    await item.scope.set("beat.target", client_id)
    return True


@task.process("beat", interval=0.2)
async def beat(ctx):
    n = (await ctx.scope.get("beat.n", 0)) + 1
    await ctx.scope.set("beat.n", n)
    await ctx.push("beat", {"n": n, "node": ctx.node_name})
    chosen = await ctx.scope.get("beat.target")
    if chosen:
        await ctx.push("just-you", {"n": n}, client_id=chosen)
