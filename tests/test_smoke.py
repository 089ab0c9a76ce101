import numpy as np

import symgrad as sg


def test_textbook_max_example():
    with sg.use_graph():
        x, y, z = sg.var("x"), sg.var("y"), sg.var("z")
        f = (x + y) * sg.maximum(y, z)
        fn = sg.compile([f, *sg.grad(f, [x, y, z])])
        np.testing.assert_allclose(fn(-2.0, 5.0, -4.0), [15.0, 5.0, 8.0, 0.0])
