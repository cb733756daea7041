"""Standard normal draws for Brian2's C++ standalone programs, by NumPy's ziggurat.

Brian2's ``randn()`` on ``cpp_standalone`` is the polar Box–Muller method over a
32-bit Mersenne Twister: two ``rand()`` (four 32-bit words) and a logarithm per pair
of draws, plus rejections. For Gaussian rate inputs that is most of the program's
time (about 70 % of an Oja run with 10⁴ inputs: the inputs are redrawn every step).
:func:`normal_function` is a Brian2 :class:`~brian2.Function` ``plasticity_randn()``
whose C++ implementation calls NumPy's own ``random_standard_normal`` (the ziggurat of
``numpy.random.Generator.standard_normal``, from the static library
``libnpyrandom`` that NumPy ships for extensions, linked as NumPy's documentation on
extending ``numpy.random`` describes) on a 64-bit Mersenne Twister
(``std::mt19937_64``): about one 64-bit word per draw, rarely a logarithm.

Seeding: each code object using it seeds its generator, at its first draw, from
Brian2's own generator (four words from ``brian::_random_generators[0]``), which
``brian2.seed(experiment.seed)`` seeds in ``main``. The draws are therefore a
function of the experiment's seed (same seed, same numbers), the seed is not part of
the generated code (a new seed needs no recompilation), and two code objects get
different streams. The stream differs from the one of Brian2's ``randn()``.

Only for cpp_standalone and only when NumPy's library and header are where NumPy's
documentation says; :func:`normal_function` returns ``None`` otherwise and the caller
keeps Brian2's ``randn()``. On Brian2's runtime device ``randn()`` stays (its Cython
draws come from ``numpy.random``, in buffers).
"""

from pathlib import Path

#: C++ of ``plasticity_randn`` (one generator per code object, see the module)
NORMAL_CODE = r"""
extern "C" double random_standard_normal(bitgen_t *bitgen_state);
static std::mt19937_64 _plasticity_normal_bits;
static bool _plasticity_normal_seeded = false;
static uint64_t _plasticity_next_uint64(void *) { return _plasticity_normal_bits(); }
static uint32_t _plasticity_next_uint32(void *) { return (uint32_t)(_plasticity_normal_bits() >> 32); }
static double _plasticity_next_double(void *)
{
    return (double)(_plasticity_normal_bits() >> 11) * (1.0 / 9007199254740992.0);
}
static bitgen_t _plasticity_bitgen = {NULL, _plasticity_next_uint64, _plasticity_next_uint32,
                                      _plasticity_next_double, _plasticity_next_uint64};
static inline double plasticity_randn(const int _vectorisation_idx)
{
    if (!_plasticity_normal_seeded) {
        uint32_t words[4];
        for (int j = 0; j < 4; j++)
            words[j] = (uint32_t)(brian::_random_generators[0].rand() * 4294967296.0);
        std::seed_seq seq(words, words + 4);
        _plasticity_normal_bits.seed(seq);
        _plasticity_normal_seeded = true;
    }
    return random_standard_normal(&_plasticity_bitgen);
}
"""


def numpy_random_paths():
    """(include folder, library folder) of NumPy's C random API, or ``None`` when the
    installed NumPy lacks ``numpy/random/bitgen.h`` or ``libnpyrandom.a``."""
    import numpy as np

    include = Path(np.get_include())
    library = Path(np.random.__file__).parent / "lib"
    if (include / "numpy" / "random" / "bitgen.h").is_file() and \
            any(library.glob("*npyrandom.*")):
        return include, library
    return None


def normal_function():
    """The Brian2 Function ``plasticity_randn()`` (C++ only), or ``None`` if NumPy's
    random library is not available (then use Brian2's ``randn()``)."""
    paths = numpy_random_paths()
    if paths is None:
        return None
    import brian2 as b2
    import numpy as np

    include, library = paths

    def plasticity_randn(vectorisation_idx):  # pragma: no cover - Python targets only
        return np.random.standard_normal(len(np.atleast_1d(vectorisation_idx)))

    func = b2.Function(plasticity_randn, arg_units=[], return_unit=1, stateless=False,
                       auto_vectorise=True)
    func.implementations.add_implementation(
        "cpp", {"support_code": NORMAL_CODE}, name="plasticity_randn",
        compiler_kwds={"headers": ["<random>", "<cstdint>", '"numpy/random/bitgen.h"'],
                       "include_dirs": [str(include)], "library_dirs": [str(library)],
                       "libraries": ["npyrandom"]})
    return func
