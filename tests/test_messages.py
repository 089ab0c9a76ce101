"""Messages for the traps new users fell into (issue 20, item 8): each says what to do."""

import numpy as np
import pytest

import symgrad as sg


def test_a_variable_redeclared_with_another_shape_suggests_a_graph_of_its_own():
    with sg.use_graph():
        sg.var("X", shape=(3,))
        with pytest.raises(sg.ShapeError, match=r"cannot be redeclared .* with sg\.use_graph\(\)"):
            sg.var("X", shape=(4,))
    # and the suggestion works: a new graph takes the new shape
    with sg.use_graph():
        assert sg.var("X", shape=(4,)).shape == (4,)


def test_compiling_hessian_blocks_says_to_flatten_them_in_one_short_line():
    with sg.use_graph():
        a, b = sg.var("a"), sg.var("b")
        blocks = sg.hessian(a * a * b, [a, b])
        with pytest.raises(sg.SymgradError, match=r"flat list .* list of 2 lists .* flatten it") \
                as raised:
            sg.compile(blocks)
        assert len(str(raised.value)) < 200 and "\n" not in str(raised.value)
        fn = sg.compile([block for row in blocks for block in row], inputs=[a, b])
        np.testing.assert_allclose(fn(1.5, 2.0), [4.0, 3.0, 3.0, 0.0])


def test_a_wrong_output_is_shown_shortened():
    with sg.use_graph():
        a = sg.var("a")
        with pytest.raises(sg.SymgradError, match=r"got \[.*\.\.\.$") as raised:
            sg.compile([a, "x" * 500])
        assert len(str(raised.value)) < 250


def test_check_grad_documents_wrt_and_leaves_the_data_out_when_asked():
    assert "wrt=[W, b]" in sg.check_grad.__doc__
    with sg.use_graph():
        X, w = sg.var("X", shape=(5, 2)), sg.var("w", shape=(2,))
        loss = sg.sum(sg.tanh(X @ w))
        at = {"X": np.linspace(-1, 1, 10).reshape(5, 2), "w": np.array([0.3, -0.2])}
        assert set(sg.check_grad(loss, at)) == {"X", "w"}       # by default, the data too
        errors = sg.check_grad(loss, at, wrt=w)
        assert set(errors) == {"w"} and errors["w"] < 1e-8
