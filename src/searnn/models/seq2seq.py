"""RNN encoder-decoder with a step API shared by teacher forcing, decoding and SeaRNN roll-outs.

Architecture (one decoder step for a row with previous token y, state s, previous attentional output o'):

    x   = dropout(E_tgt[y])                  ; concatenated with o' when input feeding
    h   = RNN_L(...RNN_1(x, s_1)..., s_L)     ; stacked single-layer nn.GRU / nn.LSTM, dropout between layers
    ctx = attention(h, memory)                ; Luong placement: after the RNN, masked by source length
    o   = tanh(W_o [ctx; h])                  ; (o = h without attention)
    logits = W_out dropout(o)                 ; (V,)

The decoder is a stack of single-layer RNN modules rather than one multi-layer module: the teacher-forced
fast path runs each layer over the whole sequence in one call (cuDNN on GPU) and still sees every
layer's hidden state at every step, which :meth:`Seq2Seq.teacher_forced_states` returns so that SeaRNN
can start roll-outs from any cell. ``step`` runs the same modules on sequences of length 1, so both
paths share all weights.

Decoder initial state (the "bridge"): decoder layer l takes the final state of encoder layer
``l + L_enc - L_dec`` (the top layers are aligned; clipped at 0 when the decoder is deeper), with both
directions concatenated. When the encoder output size differs from the decoder's (bidirectional
encoder), h goes through ``tanh(Linear(.))`` and the LSTM cell state through a ``Linear`` (no tanh,
cell states are unbounded); otherwise the states are copied.

Initialisation: Xavier-uniform weights and zero biases for every Linear; PyTorch defaults for embeddings
(PAD rows zero) and RNNs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from searnn.data.vocab import PAD_ID
from searnn.models.attention import Attention
from searnn.models.config import ModelConfig
from searnn.models.encoder import Encoder, make_rnn
from searnn.models.functional import tanh
from searnn.models.state import DecoderState, Encoded
from searnn.profiling import region

RNNState = tuple[torch.Tensor, torch.Tensor | None]
Projection = Callable[[torch.Tensor], torch.Tensor]
"""A function of attentional outputs ``(N, H)`` replacing the output layer in the fast steps."""


class Seq2Seq(nn.Module):
    """Encoder-decoder. ``src_vocab_sizes``: one size per source token stream (empty for feature
    sources); ``src_feature_dim``: F for float ``(B, S, F)`` sources, else None; ``tgt_vocab_size``: V."""

    def __init__(
        self,
        cfg: ModelConfig,
        src_vocab_sizes: list[int],
        src_feature_dim: int | None,
        tgt_vocab_size: int,
    ):
        super().__init__()
        self.cfg = cfg
        self.tgt_vocab_size = tgt_vocab_size
        self.encoder = Encoder(cfg, list(src_vocab_sizes), src_feature_dim)
        hid, mem = cfg.hidden, self.encoder.out_dim
        self.tgt_embedding = nn.Embedding(tgt_vocab_size, cfg.tgt_emb_dim, padding_idx=PAD_ID)
        dec_in = cfg.tgt_emb_dim + (hid if cfg.input_feed else 0) + (mem if cfg.aligned_input else 0)
        self.rnns = nn.ModuleList(
            make_rnn(cfg.cell, dec_in if layer == 0 else hid, hid) for layer in range(cfg.dec_layers)
        )
        shift = cfg.enc_layers - cfg.dec_layers
        self._bridge_layers = [min(max(layer + shift, 0), cfg.enc_layers - 1) for layer in range(cfg.dec_layers)]
        self.bridge_h: nn.Linear | None = nn.Linear(mem, hid) if mem != hid else None
        self.bridge_c: nn.Linear | None = nn.Linear(mem, hid) if mem != hid and cfg.cell == "lstm" else None
        self.attention: Attention | None = None
        self.combine: nn.Linear | None = None
        if cfg.attention != "none":
            self.attention = Attention(cfg.attention, mem, hid, hid)
            self.combine = nn.Linear(mem + hid, hid)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(hid, tgt_vocab_size)
        self.reset_parameters()

    # ------------------------------------------------------------------ setup

    def reset_parameters(self) -> None:
        """Xavier-uniform for Linear weights, zero Linear biases; other modules keep PyTorch defaults."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Number of (trainable) scalar parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # ------------------------------------------------------------------ encoder side

    def encode(self, src: torch.Tensor, src_len: torch.Tensor, host_len: torch.Tensor | None = None) -> Encoded:
        """src: ``(B, S, K)`` long or ``(B, S, F)`` float; src_len: ``(B,)`` long, all >= 1; host_len: the same
        lengths as a CPU tensor, when the caller has them (no device->host copy, see :class:`Encoder`)."""
        memory, h, c = self.encoder(src, src_len, host_len)
        s = memory.shape[1]
        src_len = src_len.to(memory.device)
        mask = torch.arange(s, device=memory.device)[None, :] < src_len[:, None]
        keys = self.attention.keys(memory) if self.attention is not None else None
        return Encoded(memory=memory, mask=mask, keys=keys, h_final=h, c_final=c, src_len=src_len)

    def init_state(self, enc: Encoded) -> DecoderState:
        """Decoder state before the first step: one row per example, ``batch_idx = arange(B)``."""
        # the bridged encoder layers, stacked (the same values as an index_select, without a host->device copy)
        h = torch.stack([enc.h_final[layer] for layer in self._bridge_layers])  # (L_dec, B, H_enc)
        c = torch.stack([enc.c_final[layer] for layer in self._bridge_layers]) if enc.c_final is not None else None
        if self.bridge_h is not None:
            h = tanh(self.bridge_h(h))
            if c is not None and self.bridge_c is not None:
                c = self.bridge_c(c)
        b = enc.batch_size
        feed = h.new_zeros(b, self.cfg.hidden) if self.cfg.input_feed else None
        idx = torch.arange(b, device=h.device)
        pos = torch.zeros_like(idx) if self.cfg.aligned_input else None
        return DecoderState(
            h=h.contiguous(), c=None if c is None else c.contiguous(), feed=feed, batch_idx=idx, pos=pos
        )

    @staticmethod
    def _aligned_memory(enc: Encoded, length: int) -> torch.Tensor:
        """Encoder outputs at positions ``0..length-1``, ``(B, length, H_enc)``, zeros past the source end."""
        mem = enc.memory[:, :length]
        if mem.shape[1] < length:
            mem = F.pad(mem, (0, 0, 0, length - mem.shape[1]))
        return mem

    # ------------------------------------------------------------------ decoder pieces

    def _run_layers(
        self, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor | None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor | None]:
        """x: ``(N, T, D_in)``; h0, c0: ``(L, N, H)``. Returns the input and output sequence of every
        layer (``(N, T, .)``, inputs after inter-layer dropout) and the final ``h_n, c_n (L, N, H)``."""
        inputs, outputs, hs, cs = [], [], [], []
        inp = x
        for layer, rnn in enumerate(self.rnns):
            if layer > 0:
                inp = self.dropout(inp)
            hx = h0[layer : layer + 1].contiguous()
            if c0 is not None:
                out, (h, c) = rnn(inp, (hx, c0[layer : layer + 1].contiguous()))
                cs.append(c)
            else:
                out, h = rnn(inp, hx)
            hs.append(h)
            inputs.append(inp)
            outputs.append(out)
            inp = out
        return inputs, outputs, torch.cat(hs, 0), torch.cat(cs, 0) if cs else None

    def _attentional(self, h: torch.Tensor, ctx: torch.Tensor | None) -> torch.Tensor:
        """Attentional output ``tanh(W_o [ctx; h])`` (``h`` itself without attention)."""
        if ctx is None or self.combine is None:
            return h
        return tanh(self.combine(torch.cat([ctx, h], dim=-1)))

    def _row_context(self, enc: Encoded, h: torch.Tensor, state: DecoderState) -> torch.Tensor | None:
        """Attention context ``(N, H_enc)`` for rows ``h (N, H)`` of ``state`` (see RowLayout)."""
        if self.attention is None:
            return None
        assert enc.keys is not None
        layout = state.get_layout(enc.batch_size)
        if layout.mode == "identity":
            return self.attention(h.unsqueeze(1), enc.memory, enc.keys, enc.mask).squeeze(1)
        if layout.mode == "grouped":
            assert layout.pos is not None
            memory, keys, mask = enc.memory, enc.keys, enc.mask
            if layout.examples is not None:  # the examples that have rows only
                memory, keys, mask = (x.index_select(0, layout.examples) for x in (memory, keys, mask))
            b, m = memory.shape[0], layout.width
            q = h.new_zeros(b * m, h.shape[-1]).index_copy(0, layout.pos, h).view(b, m, -1)
            ctx = self.attention(q, memory, keys, mask)  # (G, M, H_enc)
            return ctx.reshape(b * m, -1).index_select(0, layout.pos)
        bi = state.batch_idx
        return self.attention(h.unsqueeze(1), enc.memory[bi], enc.keys[bi], enc.mask[bi]).squeeze(1)

    # ------------------------------------------------------------------ public decoder API

    def step(
        self, enc: Encoded, state: DecoderState, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, DecoderState]:
        """One decoder step for N rows: feed ``tokens (N,)`` long, return logits ``(N, V)`` for the next
        position and the new state (same ``batch_idx``).

        Row n attends over example ``state.batch_idx[n]`` of ``enc`` (shared memory, see
        :mod:`searnn.models.state`). Dropout follows the module's train/eval mode.
        """
        o, new = self._step_core(enc, state, tokens, need_output=True)
        assert o is not None
        return self.out(self.dropout(o)), new

    def advance(self, enc: Encoded, state: DecoderState, tokens: torch.Tensor) -> DecoderState:
        """The state after feeding ``tokens (N,)``, without the output projection (cheaper than
        :meth:`step` when only the state is needed, e.g. to move roll-out starts past a prefix token)."""
        return self._step_core(enc, state, tokens, need_output=False)[1]

    def step_shared(
        self, enc: Encoded, state: DecoderState, tokens: torch.Tensor, rows: torch.Tensor,
        project: Projection | None = None, gates: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, DecoderState]:
        """:meth:`step` for N rows that branch from U shared states: row n feeds ``tokens[n]`` from state
        row ``rows[n]`` (``rows (N,)`` long into the U rows of ``state``). Equals
        ``step(enc, state.index(rows), tokens)`` up to float rounding, but the first layer's recurrent
        projection (and the input-feed / aligned-input part of its input projection) is computed once per
        shared state, and the embedding projection once per distinct token: the first step of SeaRNN
        roll-outs, where all candidate tokens of a cell start from the cell's state.

        In train mode (dropout on the inputs) it simply indexes the state and calls :meth:`step`.
        Returns logits ``(N, V)`` and the new N-row state. ``project``: eval mode only, a function of the
        attentional outputs ``(N, H)`` whose result is returned instead of the logits ``self.out(o)`` (e.g.
        the argmax over a shortlist of the output layer: see :class:`searnn.decoding.greedy.Scorer`).
        ``gates``: the :meth:`token_gates` table, looked up instead of projecting each distinct token (no
        ``unique``, whose output size is read on the host: the static-shape search passes it).
        """
        if self.training:
            return self.step(enc, state.index(rows), tokens)
        gx = self._token_gates_of(tokens) if gates is None else gates.index_select(0, tokens)
        return self._fast_step(enc, state, gx, rows, project)

    def token_gates(self) -> torch.Tensor:
        """``(V, G)``: the first decoder layer's input pre-activations ``W_ih[:, :E] E_tgt[v] + b_ih`` of every
        target token v (G = 3H for a GRU, 4H for an LSTM). In eval mode (no dropout on the embedding) a
        decoder step can look its token's row up instead of projecting the embedding: see :meth:`step_cached`."""
        return self._embedding_gates(self.tgt_embedding.weight)

    def step_cached(
        self, enc: Encoded, state: DecoderState, tokens: torch.Tensor, gates: torch.Tensor,
        project: Projection | None = None,
    ) -> tuple[torch.Tensor, DecoderState]:
        """:meth:`step` with the token input projection looked up in ``gates`` (:meth:`token_gates`, computed
        once per decoding call) instead of recomputed for every row: the first layer then costs one matmul
        per step (the recurrent one) instead of two. Equal to :meth:`step` up to float rounding; in train mode
        it calls :meth:`step` (dropout). tokens: ``(N,)`` long; returns logits ``(N, V)`` and the new state.
        ``project``: as in :meth:`step_shared` (eval mode only)."""
        if self.training:
            return self.step(enc, state, tokens)
        return self._fast_step(enc, state, gates.index_select(0, tokens), None, project)

    def _embedding_gates(self, emb: torch.Tensor) -> torch.Tensor:
        """``(N, G)`` first-layer input pre-activations ``W_ih[:, :E] x + b_ih`` of embeddings ``emb (N, E)``."""
        rnn = self.rnns[0]
        return F.linear(emb, rnn.weight_ih_l0[:, : self.cfg.tgt_emb_dim], rnn.bias_ih_l0)

    def _token_gates_of(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(N, G)`` rows of :meth:`token_gates` for ``tokens (N,)``, projecting each distinct token once."""
        uniq, inv = torch.unique(tokens, return_inverse=True)
        return self._embedding_gates(self.tgt_embedding(uniq)).index_select(0, inv)

    def _fast_step(
        self, enc: Encoded, state: DecoderState, gx: torch.Tensor, rows: torch.Tensor | None,
        project: Projection | None = None,
    ) -> tuple[torch.Tensor, DecoderState]:
        """Eval-mode decoder step from the token part of the first layer's input pre-activations ``gx (N, G)``.

        ``rows (N,)`` long: row n continues state row ``rows[n]`` (shared states, see :meth:`step_shared`); the
        recurrent projection is then computed once per state row. None: row n continues state row n.
        ``project``: applied to the attentional outputs ``(N, H)`` instead of ``self.out`` (logits ``(N, V)``).
        Profiled regions (:mod:`searnn.profiling`): ``decoder.rnn``, ``decoder.attention``,
        ``decoder.projection``.
        """
        with region("decoder.rnn"):
            inp, new = self._fast_rnn(enc, state, gx, rows)
        with region("decoder.attention"):
            o_out = self._attentional(inp, self._row_context(enc, inp, new))
        if self.cfg.input_feed:
            new.feed = o_out
        if project is not None:  # it profiles its own regions
            return project(o_out), new
        with region("decoder.projection"):
            return self.out(o_out), new

    def _fast_rnn(
        self, enc: Encoded, state: DecoderState, gx: torch.Tensor, rows: torch.Tensor | None
    ) -> tuple[torch.Tensor, DecoderState]:
        """The recurrent part of :meth:`_fast_step`: the top layer's output ``(N, H)`` and the new state
        (without its input feed)."""
        rnn = self.rnns[0]
        e, hid = self.cfg.tgt_emb_dim, self.cfg.hidden

        def pick(x: torch.Tensor) -> torch.Tensor:
            return x if rows is None else x.index_select(0, rows)

        extra, pos = self._extra_inputs(enc, state)
        if extra is not None:
            gx = gx + pick(F.linear(extra, rnn.weight_ih_l0[:, e:]))
        h_prev = state.h[0]  # (U, H)
        gh = pick(F.linear(h_prev, rnn.weight_hh_l0, rnn.bias_hh_l0))  # (N, G)
        h_prev = pick(h_prev)
        c1 = None
        if self.cfg.cell == "gru":
            rz = torch.sigmoid(gx[:, : 2 * hid] + gh[:, : 2 * hid])
            r, z = rz[:, :hid], rz[:, hid:]
            n = tanh(torch.addcmul(gx[:, 2 * hid :], r, gh[:, 2 * hid :]))
            h1 = torch.lerp(n, h_prev, z)  # (1 - z) * n + z * h_prev
        else:
            assert state.c is not None
            i, f, g, o = (gx + gh).chunk(4, dim=-1)
            c1 = torch.sigmoid(f) * pick(state.c[0]) + torch.sigmoid(i) * tanh(g)
            h1 = torch.sigmoid(o) * tanh(c1)
        hs, cs = [h1], [c1]
        inp = h1
        for layer in range(1, len(self.rnns)):
            hx = pick(state.h[layer])
            if state.c is not None:
                out, (h, c) = self.rnns[layer](inp.unsqueeze(1), (hx[None], pick(state.c[layer])[None]))
                cs.append(c[0])
            else:
                out, h = self.rnns[layer](inp.unsqueeze(1), hx[None])
            hs.append(h[0])
            inp = out.squeeze(1)
        h_n = torch.stack(hs, 0)
        c_n = torch.stack(cs, 0) if c1 is not None else None  # type: ignore[arg-type]
        new = DecoderState(
            h=h_n, c=c_n, feed=None, batch_idx=pick(state.batch_idx), pos=None if pos is None else pick(pos),
            layout=state.layout if rows is None else None,  # same rows: same attention layout
        )
        return inp, new

    def _extra_inputs(self, enc: Encoded, state: DecoderState) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The decoder input besides the token embedding: previous attentional output (input feeding)
        and/or the encoder output at the row's position (aligned input), ``(N, D)`` or None; and the
        next position ``(N,)`` (aligned input) or None."""
        parts: list[torch.Tensor] = []
        pos = None
        if self.cfg.input_feed:
            assert state.feed is not None
            parts.append(state.feed)
        if self.cfg.aligned_input:
            assert state.pos is not None
            padded = F.pad(enc.memory, (0, 0, 0, 1))  # (B, S+1, H_enc), last column zeros
            col = state.pos.clamp(max=enc.memory.shape[1])
            parts.append(padded[state.batch_idx, col])
            pos = state.pos + 1
        return (torch.cat(parts, dim=-1) if parts else None), pos

    def _step_core(
        self, enc: Encoded, state: DecoderState, tokens: torch.Tensor, need_output: bool
    ) -> tuple[torch.Tensor | None, DecoderState]:
        """Attentional output ``(N, H)`` (None when not needed: no input feeding and ``need_output``
        false, attention is then skipped) and the new state for one step."""
        x = self.dropout(self.tgt_embedding(tokens))  # (N, E)
        extra, pos = self._extra_inputs(enc, state)
        if extra is not None:
            x = torch.cat([x, extra], dim=-1)
        _, outputs, h_n, c_n = self._run_layers(x.unsqueeze(1), state.h, state.c)
        h = outputs[-1].squeeze(1)  # (N, H)
        o = None
        if need_output or self.cfg.input_feed:
            o = self._attentional(h, self._row_context(enc, h, state))
        new = DecoderState(
            h=h_n,
            c=c_n,
            feed=o if self.cfg.input_feed else None,
            batch_idx=state.batch_idx,
            pos=pos,
            layout=state.layout,
        )
        return o, new

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, dec_input: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``(B, T, V)`` for decoder inputs ``dec_input (B, T)`` (BOS + shifted target)."""
        return self.teacher_forced(self.encode(src, src_len), dec_input)

    def teacher_forced(self, enc: Encoded, dec_input: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``(B, T, V)`` from an already encoded batch."""
        return self._teacher_forced(enc, dec_input, want_states=False, detach=True)[0]

    def teacher_forced_states(
        self, enc: Encoded, dec_input: torch.Tensor, detach: bool = True
    ) -> tuple[torch.Tensor, DecoderState]:
        """Teacher-forced logits ``(B, T, V)`` and the decoder state before every step.

        ``states`` has N = T*B rows, row ``t*B + b`` being the state of example b *before* consuming
        ``dec_input[b, t]``, so ``step(enc, states.index(t*B + b), dec_input[b, t])`` reproduces
        ``logits[b, t]`` (up to float rounding; in train mode both use the module's dropout). With
        ``detach`` (default) the states carry no autograd history (roll-outs need none); the logits
        always do.

        Starting a roll-out at cell t with candidate token a (the token of output position t): first move
        past the prefix token, ``s = advance(enc, states.index(rows), dec_input[b, t])`` (for t < T-1 this
        is also row ``(t+1)*B + b`` of ``states``), then feed a: ``step(enc, s, a)`` gives the logits
        of position t+1; ``searnn.decoding.greedy(model, enc, s, ..., first_tokens=a)`` decodes on.
        """
        logits, states = self._teacher_forced(enc, dec_input, want_states=True, detach=detach)
        assert states is not None
        return logits, states

    def _teacher_forced(
        self, enc: Encoded, dec_input: torch.Tensor, want_states: bool, detach: bool
    ) -> tuple[torch.Tensor, DecoderState | None]:
        state0 = self.init_state(enc)
        if self.cfg.input_feed:
            return self._teacher_forced_loop(enc, state0, dec_input, want_states, detach)
        b, t = dec_input.shape
        x = self.dropout(self.tgt_embedding(dec_input))  # (B, T, E)
        if self.cfg.aligned_input:
            x = torch.cat([x, self._aligned_memory(enc, t)], dim=-1)  # (B, T, E + H_enc)
        inputs, outputs, _, _ = self._run_layers(x, state0.h, state0.c)
        top = outputs[-1]  # (B, T, H)
        ctx = None
        if self.attention is not None:
            assert enc.keys is not None
            ctx = self.attention(top, enc.memory, enc.keys, enc.mask)  # (B, T, H_enc)
        logits = self.out(self.dropout(self._attentional(top, ctx)))  # (B, T, V)
        if not want_states:
            return logits, None
        with torch.set_grad_enabled(torch.is_grad_enabled() and not detach):
            h_before = [
                torch.cat([state0.h[layer].unsqueeze(1), out[:, :-1]], dim=1)  # (B, T, H)
                for layer, out in enumerate(outputs)
            ]
            c_before = None
            if state0.c is not None:
                c_before = [
                    self._lstm_cell_states(self.rnns[layer], inputs[layer], h_before[layer], state0.c[layer])
                    for layer in range(len(self.rnns))
                ]

            def flat(seq: list[torch.Tensor]) -> torch.Tensor:
                # per layer (B, T, H) -> (L, T*B, H), row t*B + b
                return torch.stack([s.transpose(0, 1).reshape(t * b, -1) for s in seq], dim=0)

            states = DecoderState(
                h=flat(h_before),
                c=None if c_before is None else flat(c_before),
                feed=None,
                batch_idx=state0.batch_idx.repeat(t),
                pos=torch.arange(t, device=dec_input.device).repeat_interleave(b) if self.cfg.aligned_input else None,
            )
        return logits, states.detach() if detach else states

    @staticmethod
    def _lstm_cell_states(
        rnn: nn.Module, inp: torch.Tensor, h_before: torch.Tensor, c0: torch.Tensor
    ) -> torch.Tensor:
        """LSTM cell states before every step, ``(B, T, H)``.

        ``nn.LSTM`` returns only the hidden sequence, so the gates are recomputed from the known inputs
        and previous hidden states in one batched matmul, and ``c_t = f_t * c_{t-1} + i_t * g_t`` is
        accumulated with cheap element-wise operations (PyTorch gate order i, f, g, o).
        """
        gates = F.linear(inp, rnn.weight_ih_l0, rnn.bias_ih_l0) + F.linear(
            h_before, rnn.weight_hh_l0, rnn.bias_hh_l0
        )
        i, f, g, _ = gates.chunk(4, dim=-1)
        f = torch.sigmoid(f)
        u = torch.sigmoid(i) * tanh(g)
        cs = [c0]
        for step in range(inp.shape[1] - 1):
            cs.append(f[:, step] * cs[-1] + u[:, step])
        return torch.stack(cs, dim=1)

    def _teacher_forced_loop(
        self, enc: Encoded, state: DecoderState, dec_input: torch.Tensor, want_states: bool, detach: bool
    ) -> tuple[torch.Tensor, DecoderState | None]:
        """Input-feeding path: the attentional output of step t is an input of step t+1, so loop."""
        logits, states = [], []
        for t in range(dec_input.shape[1]):
            if want_states:
                states.append(state.detach() if detach else state)
            step_logits, state = self.step(enc, state, dec_input[:, t])
            logits.append(step_logits)
        all_states = DecoderState.cat(states) if want_states else None
        return torch.stack(logits, dim=1), all_states
