"""The flattened plastic vector of a record and its dense form.

A run logs ``S`` synapse weights per record in file order (``/synapses/pre`` and
``/synapses/post`` give each synapse's indices), and optionally per-neuron state
variables (``/state/<name>``, ``n_post`` each). The analysis works on the flattened
vector ``w = [weights (S), state_1 (n_post), ...]``; rules and built-in losses work on
the dense ``W`` of shape ``(B, n_post, n_pre)`` (absent synapses of a sparse topology
are zeros there, and their gradient components are simply dropped).
"""

import numpy as np


class Layout:
    """Maps flattened records ``(B, size)`` to dense ``(B, n_post, n_pre)`` and back.

    Parameters
    ----------
    pre, post : array_like of int, shape (S,)
        Presynaptic and postsynaptic index of each synapse, in file order.
    n_pre, n_post : int
    state : sequence of str
        Names of the per-postsynaptic-neuron state variables appended to the vector.
    """

    def __init__(self, pre, post, n_pre, n_post, state=()):
        self.pre = np.asarray(pre, dtype=np.intp)
        self.post = np.asarray(post, dtype=np.intp)
        self.n_pre = int(n_pre)
        self.n_post = int(n_post)
        self.state = tuple(state)
        self.n_synapses = self.pre.size
        self.size = self.n_synapses + self.n_post * len(self.state)
        full = self.n_synapses == self.n_pre * self.n_post
        idx = np.arange(self.n_synapses)
        # fast paths: all-to-all in post-major or pre-major (Brian2's) order
        self._post_major = full and np.array_equal(self.post * self.n_pre + self.pre, idx)
        self._pre_major = full and not self._post_major and np.array_equal(self.pre * self.n_post + self.post, idx)

    @property
    def full(self):
        """All-to-all in post- or pre-major order: the dense ``W`` is a view of the
        records. Otherwise it is ``n_post × n_pre`` per record whatever the number of
        synapses (10⁸ numbers for 10⁴ neurons), and per-synapse forms are preferred."""
        return self._post_major or self._pre_major

    @classmethod
    def dense_full(cls, n_pre, n_post, state=()):
        """All-to-all, post-major (``W.reshape(-1)`` order)."""
        post, pre = np.divmod(np.arange(n_pre * n_post), n_pre)
        return cls(pre, post, n_pre, n_post, state)

    def dense(self, w):
        """``W`` (B, n_post, n_pre) and the state dict ``{name: (B, n_post)}``."""
        w = np.asarray(w, float)
        B = w.shape[0]
        S = self.n_synapses
        if self._post_major:
            W = w[:, :S].reshape(B, self.n_post, self.n_pre)
        elif self._pre_major:
            W = w[:, :S].reshape(B, self.n_pre, self.n_post).transpose(0, 2, 1)
        else:
            W = np.zeros((B, self.n_post, self.n_pre))
            W[:, self.post, self.pre] = w[:, :S]
        state = {name: w[:, S + i * self.n_post:S + (i + 1) * self.n_post]
                 for i, name in enumerate(self.state)}
        return W, state

    def flat(self, dW, dstate=None):
        """The flattened vector ``(B, size)`` of a dense ``dW`` and state dict
        (missing state entries are zeros)."""
        dW = np.asarray(dW, float)
        B = dW.shape[0]
        if not self.state:
            if self._post_major:
                return np.ascontiguousarray(dW).reshape(B, -1)
            if self._pre_major:
                return np.ascontiguousarray(dW.transpose(0, 2, 1)).reshape(B, -1)
        out = np.zeros((B, self.size))
        S = self.n_synapses
        out[:, :S] = dW[:, self.post, self.pre]
        for i, name in enumerate(self.state):
            if dstate is not None and name in dstate:
                out[:, S + i * self.n_post:S + (i + 1) * self.n_post] = dstate[name]
        return out
