"""Draw the autograd graph behind a tensor with matplotlib alone (no graphviz needed)."""

from .plots import finish, new_figure


def node_label(node) -> str:
    """The node's class name; a leaf also shows its tensor's shape."""
    name = type(node).__name__
    variable = getattr(node, "variable", None)
    if variable is not None:
        return f"{name}\nleaf {tuple(variable.shape)}"
    return name


def graph_layers(tensor) -> tuple[list[list], list[tuple]]:
    """Nodes grouped by their longest distance from tensor.grad_fn, and the (parent, child) edges.

    Nodes are found level by level from the output; a node reached by paths of several lengths
    is drawn at the longest, so every arrow points downwards.
    """
    if tensor.grad_fn is None:
        raise ValueError("this tensor has no grad_fn: it is a leaf or does not require grad")
    nodes, edges, frontier = [tensor.grad_fn], [], [tensor.grad_fn]
    while frontier:
        below = []
        for parent in frontier:
            children = [c for c, _ in parent.next_functions if c is not None]
            edges += [(parent, c) for c in children]
            below += [c for c in children if c not in nodes and c not in below]
        nodes += below
        frontier = below
    edges = list(dict.fromkeys(edges))
    depth = dict.fromkeys(nodes, 0)
    for _ in nodes:  # the graph is acyclic, so len(nodes) rounds settle every longest path
        for parent, child in edges:
            depth[child] = max(depth[child], depth[parent] + 1)
    layers = [[n for n in nodes if depth[n] == d] for d in range(max(depth.values()) + 1)]
    return layers, edges


def draw_graph(tensor, title: str = "autograd graph (output at the top, leaves below)"):
    """A figure of the graph from tensor.grad_fn down to the leaves; returns the Figure."""
    layers, edges = graph_layers(tensor)
    width = max(len(layer) for layer in layers)
    fig, ax = new_figure(figsize=(max(4, 2.6 * width), 1.3 * len(layers) + 0.6))
    where = {}
    for row, layer in enumerate(layers):
        for col, node in enumerate(layer):
            where[node] = ((col + 0.5) * width / len(layer), -row)
    for parent, child in edges:
        (x0, y0), (x1, y1) = where[parent], where[child]
        ax.annotate("", xy=(x1, y1 + 0.25), xytext=(x0, y0 - 0.25),
                    arrowprops={"arrowstyle": "->", "color": "grey"})
    for node, (x, y) in where.items():
        leaf = hasattr(node, "variable")
        ax.text(x, y, node_label(node), ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round", "facecolor": "#d8ecd8" if leaf else "#dde6f5"})
    ax.set(xlim=(0, width), ylim=(-len(layers) + 0.4, 0.6), title=title)
    ax.axis("off")
    return finish(fig)
