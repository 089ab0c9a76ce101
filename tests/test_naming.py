"""symgrad.naming: the rules that make every generated or readable name, tested directly, and a
few compiled sources showing that graph, differentiate and codegen take their names from it."""

import keyword

import pytest

import symgrad as sg
from symgrad import naming


# -- derivative names ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, function, variables, expected", [
    ("grad", None, ["x"], "d_out_d_x"),
    ("grad", None, ["x", "x"], "d2_out_d_x2"),
    ("grad", None, ["x", "x", "x"], "d3_out_d_x3"),
    ("grad", "loss", ["w"], "d_loss_d_w"),
    ("jacobian", None, ["v"], "d_out_d_v"),
    ("hessian", None, ["x", "y"], "d2_out_d_x_d_y"),
    ("hessian", None, ["y", "y"], "d2_out_d_y2"),
    ("grad", None, ["x", "y", "x"], "d3_out_d_x_d_y_d_x"),
    ("grad", None, ["x", "x", "y"], "d3_out_d_x_d_x_d_y"),
    ("grad", None, [None], "d_out_d_t"),
    ("grad", "f", [None, None], "d2_f_d_t2"),
    ("hvp", None, ["w"], "hvp_out_w"),
    ("hvp", "f", ["a", "b"], "hvp_f_a_b"),
])
def test_derivative_names(kind, function, variables, expected):
    assert naming.derivative_name(kind, function, variables) == expected


def test_derivative_names_of_order_one_to_three_in_compiled_sources():
    x = sg.var("x")
    f = x ** 4 * sg.exp(x)
    first = sg.grad(f, x)
    second = sg.grad(first, x)
    third = sg.grad(second, x)
    for optimize in (True, False):
        source = sg.compile([first, second, third], inputs=[x], optimize=optimize).source
        assert "return d_out_d_x, d2_out_d_x2, d3_out_d_x3" in source


def test_mixed_second_derivatives_name_each_variable_in_order():
    x, y = sg.var("x"), sg.var("y")
    f = sg.sin(x) * sg.exp(y)
    mixed = sg.grad(sg.grad(f, x), y)
    assert sg.compile(mixed, inputs=[x, y]).source.rstrip().endswith("return d2_out_d_x_d_y,")


# -- collisions ------------------------------------------------------------------------------------

def test_a_taken_name_gets_the_first_free_suffix():
    namer = naming.Namer(taken=["x", "x_2"])
    assert namer.claim("x") == "x_3"
    assert namer.claim("x") == "x_4"
    assert namer.claim("y") == "y"


@pytest.mark.parametrize("word", ["lambda", "class", "None", "True", "yield", "def"])
def test_a_keyword_is_never_handed_out(word):
    assert keyword.iskeyword(word)
    assert naming.Namer().claim(word) == f"{word}_2"


@pytest.mark.parametrize("name", sorted(naming.RESERVED))
def test_the_emitted_codes_own_names_are_never_handed_out(name):
    assert naming.Namer().claim(name) == f"{name}_2"


def test_temporaries_count_up_and_skip_taken_names():
    namer = naming.Namer(taken=["t1"])
    assert [namer.temp() for _ in range(3)] == ["t0", "t2", "t3"]
    assert namer.claim("t4") == "t4"
    assert namer.temp() == "t5"


def test_a_claimed_name_must_be_an_identifier():
    for bad in ["x; import os", "1x", "é", "", None]:
        with pytest.raises(sg.SymgradError, match="cannot be written into generated source"):
            naming.Namer().claim(bad)


def test_a_derivative_name_taken_by_a_user_variable_is_suffixed():
    x, other = sg.var("x"), sg.var("d_out_d_x")
    t0 = sg.var("t0")
    source = sg.compile(sg.grad(sg.sin(x) * other * t0, x), inputs=[x, other, t0]).source
    assert source.startswith("def f(x, d_out_d_x, t0):")
    assert "return d_out_d_x_2," in source
    assert "\n    t0 =" not in source       # the temporaries skip the input's name


def test_a_variable_named_like_a_reserved_name_is_renamed_in_the_source():
    np_var = sg.var("np")
    source = sg.compile(sg.sin(np_var), inputs=[np_var]).source
    assert source.startswith("def f(np_2):")


# -- what a name may be ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["x", "x_1", "_private", "Theta"])
def test_variable_names_that_pass(name):
    assert naming.check_name(name) == name


@pytest.mark.parametrize("name, message", [
    ("lambda", "is reserved"), ("__class__", "is reserved"), ("1x", "ASCII identifier"),
    ("x y", "ASCII identifier"), ("é", "ASCII identifier"), (3, "ASCII identifier"),
])
def test_variable_names_that_are_refused(name, message):
    with pytest.raises(sg.SymgradError, match=message):
        naming.check_name(name)


def test_graph_and_ops_check_names_with_naming():
    from symgrad import graph, ops
    assert graph.check_name is naming.check_name is ops.check_name


@pytest.mark.parametrize("name, reserved", [
    ("f", False), ("loss", False), ("np", True), ("float", True), ("lambda", True),
    ("__builtins__", True), ("_sg_ws", True),
])
def test_reserved_function_names(name, reserved):
    assert naming.is_reserved_function_name(name) is reserved


def test_identifiers():
    assert naming.is_identifier("d2_out_d_x2")
    assert not naming.is_identifier("a.b")
    assert not naming.is_identifier("π")
    assert not naming.is_identifier(7)


# -- the other generated names ---------------------------------------------------------------------

def test_generated_helper_names():
    assert naming.temporary(12) == "t12"
    assert naming.constant(0) == "c0"
    assert naming.dimension("n") == "dim_n"
    assert naming.kernel(3) == "_sg_kernel_3"
    assert naming.suffixed("t3", "mask") == "t3_mask"
    assert naming.suffixed("x", 2) == "x_2"


def test_a_dimension_length_is_named_after_its_dimension():
    v = sg.var("v", shape=("n", 2))
    source = sg.compile(sg.sin(sg.reshape(v, ("n", 1, 2))), inputs=[v]).source
    assert "    dim_n = np.shape(v)[0]\n    t0 = np.reshape(v, (dim_n, 1, 2))\n" in source
