import math

import pytest
import torch
from torch import nn

from llmcourse.config import seed_everything
from llmcourse.data import BPTTIterator, batchify
from llmcourse.rnn import (RNNLM, LSTMCell, RNNConfig, RNNCell, ScratchLSTM, ScratchRNN, detach_state,
                           forget_bias, grad_norms_through_time, lstm_cell_step, set_forget_bias)
from llmcourse.training import TrainConfig, evaluate, load_checkpoint, save_checkpoint, train


@pytest.mark.parametrize("num_layers", [1, 2])
def test_scratch_rnn_equals_torch_rnn(num_layers):
    torch.manual_seed(0)
    ref = nn.RNN(5, 7, num_layers, batch_first=True)
    scratch = ScratchRNN.from_torch(ref)
    x, h0 = torch.randn(3, 11, 5), torch.randn(num_layers, 3, 7)
    out_ref, h_ref = ref(x, h0)
    out, h = scratch(x, h0)
    assert out.shape == (3, 11, 7) and h.shape == (num_layers, 3, 7)
    torch.testing.assert_close(out, out_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h, h_ref, atol=1e-5, rtol=1e-5)
    out0, _ = scratch(x)  # no initial state means zeros, as in nn.RNN
    torch.testing.assert_close(out0, ref(x)[0], atol=1e-5, rtol=1e-5)


def test_cell_equals_torch_rnncell_and_gradients_match():
    torch.manual_seed(1)
    ref = nn.RNNCell(4, 6)
    cell = RNNCell(4, 6)
    cell.load_state_dict(ref.state_dict())  # same parameter names as nn.RNNCell
    x, h = torch.randn(2, 4), torch.randn(2, 6)
    torch.testing.assert_close(cell(x, h), ref(x, h), atol=1e-6, rtol=1e-6)
    cell(x, h).sum().backward()
    ref(x, h).sum().backward()
    torch.testing.assert_close(cell.weight_hh.grad, ref.weight_hh.grad, atol=1e-6, rtol=1e-6)


def test_from_torch_rejects_what_it_cannot_copy():
    with pytest.raises(ValueError, match="tanh"):
        ScratchRNN.from_torch(nn.RNN(3, 4, nonlinearity="relu"))
    with pytest.raises(ValueError, match="batch, time, input"):
        ScratchRNN(3, 4)(torch.randn(5, 3))


def test_gradients_vanish_for_rnn_not_for_lstm():
    torch.manual_seed(0)
    rnn, lstm = nn.RNN(8, 32, batch_first=True), nn.LSTM(8, 32, batch_first=True)
    with torch.no_grad():  # a contractive RNN: the textbook case of vanishing gradients
        rnn.weight_hh_l0.mul_(0.5)
    g_rnn, g_lstm = grad_norms_through_time(rnn, 40), grad_norms_through_time(lstm, 40)
    assert g_rnn.shape == (40,) and g_lstm.shape == (40,)
    assert g_rnn[30] < 1e-6 * g_rnn[0]  # 30 steps back, the RNN has forgotten
    assert g_lstm[30] / g_lstm[0] > 1e3 * g_rnn[30] / g_rnn[0]


@pytest.mark.parametrize("num_layers", [1, 2])
def test_scratch_lstm_equals_torch_lstm(num_layers):
    torch.manual_seed(0)
    ref = nn.LSTM(5, 7, num_layers, batch_first=True)
    scratch = ScratchLSTM.from_torch(ref)
    x = torch.randn(3, 11, 5, requires_grad=True)
    h0, c0 = torch.randn(num_layers, 3, 7), torch.randn(num_layers, 3, 7)
    out_ref, (h_ref, c_ref) = ref(x, (h0, c0))
    out, (h, c) = scratch(x, (h0, c0))
    assert out.shape == (3, 11, 7) and h.shape == c.shape == (num_layers, 3, 7)
    torch.testing.assert_close(out, out_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h, h_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(c, c_ref, atol=1e-5, rtol=1e-5)
    # the same gradients, into the inputs and into every weight
    grad_ref = torch.autograd.grad(out_ref.pow(2).sum() + c_ref.sum(), [x, ref.weight_hh_l0, ref.bias_ih_l0])
    grad = torch.autograd.grad(out.pow(2).sum() + c.sum(), [x, scratch.cells[0].weight_hh, scratch.cells[0].bias_ih])
    for g, g_ref in zip(grad, grad_ref):
        torch.testing.assert_close(g, g_ref, atol=1e-5, rtol=1e-5)
    out0, (h0_out, _) = scratch(x)  # no initial state means zeros, as in nn.LSTM
    torch.testing.assert_close(out0, ref(x)[0], atol=1e-5, rtol=1e-5)
    assert h0_out.shape == (num_layers, 3, 7)


def test_lstm_cell_equals_torch_lstmcell():
    torch.manual_seed(2)
    ref = nn.LSTMCell(4, 6)
    cell = LSTMCell(4, 6)
    cell.load_state_dict(ref.state_dict())  # same parameter names and shapes as nn.LSTMCell
    x, h, c = torch.randn(2, 4), torch.randn(2, 6), torch.randn(2, 6)
    for ours, theirs in zip(cell(x, (h, c)), ref(x, (h, c))):
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)
    bound = 1 / math.sqrt(6)
    assert all(p.abs().max() <= bound for p in LSTMCell(4, 6).parameters())  # PyTorch's init range


def test_lstm_gate_order_is_i_f_g_o():
    """Rows H:2H are the forget gate: open it fully and close the input gate, and the memory is kept as is."""
    H = 3
    W_ih, W_hh = torch.zeros(4 * H, 2), torch.zeros(4 * H, H)
    b_ih, b_hh = torch.zeros(4 * H), torch.zeros(4 * H)
    b_ih[:H], b_ih[H:2 * H] = -50.0, 50.0  # input gate shut, forget gate open
    x, h, c = torch.randn(4, 2), torch.randn(4, H), torch.randn(4, H)
    h_t, c_t = lstm_cell_step(x, h, c, W_ih, W_hh, b_ih, b_hh)
    torch.testing.assert_close(c_t, c)
    torch.testing.assert_close(h_t, torch.sigmoid(torch.zeros(())) * torch.tanh(c))  # o = sigmoid(0) = 0.5
    b_ih[H:2 * H] = -50.0  # forget gate shut too: the memory is gone
    torch.testing.assert_close(lstm_cell_step(x, h, c, W_ih, W_hh, b_ih, b_hh)[1], torch.zeros(4, H))


def test_scratch_lstm_rejects_what_it_cannot_copy():
    with pytest.raises(ValueError, match="unidirectional"):
        ScratchLSTM.from_torch(nn.LSTM(3, 4, bidirectional=True))
    with pytest.raises(ValueError, match="batch, time, input"):
        ScratchLSTM(3, 4)(torch.randn(5, 3))


def test_set_forget_bias_touches_only_the_forget_gate():
    torch.manual_seed(0)
    lstm = nn.LSTM(4, 5, num_layers=2, batch_first=True)
    before = {name: p.detach().clone() for name, p in lstm.named_parameters()}
    assert set_forget_bias(lstm, 1.5) is lstm
    torch.testing.assert_close(forget_bias(lstm), torch.full((2, 5), 1.5))
    for name, p in lstm.named_parameters():
        keep = torch.ones_like(p, dtype=torch.bool)
        if name.startswith("bias"):
            keep[5:10] = False
        assert torch.equal(p[keep], before[name][keep]), name
    scratch = ScratchLSTM(4, 5, 2)
    set_forget_bias(scratch, -1.0)
    torch.testing.assert_close(forget_bias(scratch), torch.full((2, 5), -1.0))
    with pytest.raises(TypeError, match="LSTM"):
        forget_bias(nn.GRU(3, 4))


def test_forget_bias_is_the_lever_on_the_gradient():
    """With the forget gate near 0.5 (PyTorch's init) the LSTM's gradient vanishes too; a bias of 1, then 3, keeps it."""
    ratios = []
    for b in (0.0, 1.0, 3.0):
        torch.manual_seed(0)
        g = grad_norms_through_time(set_forget_bias(nn.LSTM(8, 32, batch_first=True), b), 50)
        ratios.append(float(g[40] / g[0]))
    assert ratios[0] < 1e-6  # bias 0: exponential decay, as in a plain RNN
    assert ratios[0] * 1e3 < ratios[1] and ratios[1] * 10 < ratios[2]
    assert ratios[2] > 1e-2  # bias 3: still a few per cent of the signal 40 steps back


def test_rnnlm_keeps_pytorchs_forget_bias_init():
    """Notebook 02 says so: RNNLM does not initialise the forget-gate bias, PyTorch's default stays (around 0)."""
    torch.manual_seed(0)
    model = RNNLM(RNNConfig(vocab_size=50, d_embed=16, d_hidden=16, n_layers=2))
    b = forget_bias(model.rnn)
    assert b.shape == (2, 16)
    assert b.abs().max() <= 2 / math.sqrt(16)  # two biases, each U(-1/sqrt(16), 1/sqrt(16))


def test_detach_state():
    x = torch.ones(2, requires_grad=True)
    h, c = x * 2, x * 3
    assert detach_state(None) is None
    assert detach_state(h).grad_fn is None and torch.equal(detach_state(h), h)
    dh, dc = detach_state((h, c))
    assert dh.grad_fn is None and dc.grad_fn is None and torch.equal(dc, c)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("adaptive", [False, True])
def test_rnnlm_shapes_and_state(cell, adaptive):
    seed_everything(0)
    cfg = RNNConfig(vocab_size=50, cell=cell, d_embed=16, d_hidden=16, n_layers=2, dropout=0.0,
                    tie_weights=not adaptive, adaptive_cutoffs=(10, 30) if adaptive else None)
    model = RNNLM(cfg).eval()
    x = torch.randint(0, 50, (3, 7))
    out, state = model(x)
    assert out.shape == ((3, 7, 16) if adaptive else (3, 7, 50))
    states = state if isinstance(state, tuple) else (state,)
    assert all(s.shape == (2, 3, 16) for s in states)
    logp = model.log_probs(out)
    assert logp.shape == (3, 7, 50)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(3, 7), atol=1e-5, rtol=1e-5)
    # carrying the state across two windows == reading the whole sequence at once
    out1, s1 = model(x[:, :4])
    out2, _ = model(x[:, 4:], s1)
    torch.testing.assert_close(torch.cat([out1, out2], 1), out, atol=1e-5, rtol=1e-5)
    # the loss hook is the negative log-likelihood of the targets under log_probs
    y = torch.randint(0, 50, (3, 7))
    y[0, 0] = -100
    total, n = model.loss_fn(out, y)
    keep = y != -100
    expected = -logp.gather(-1, y.clamp(min=0)[..., None]).squeeze(-1)[keep].sum()
    assert int(n) == 20
    torch.testing.assert_close(total, expected, atol=1e-4, rtol=1e-5)


def test_weight_tying_shares_one_matrix():
    tied = RNNLM(RNNConfig(vocab_size=100, d_embed=8, d_hidden=8, tie_weights=True))
    untied = RNNLM(RNNConfig(vocab_size=100, d_embed=8, d_hidden=8, tie_weights=False))
    assert tied.head.linear.weight is tied.embed.weight
    assert untied.num_parameters() - tied.num_parameters() == 100 * 8


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="cell"):
        RNNConfig(vocab_size=10, cell="transformer")
    with pytest.raises(ValueError, match="d_hidden"):
        RNNConfig(vocab_size=10, d_embed=8, d_hidden=16, tie_weights=True)
    with pytest.raises(ValueError, match="full softmax"):
        RNNConfig(vocab_size=100, tie_weights=True, adaptive_cutoffs=(10,))
    with pytest.raises(ValueError, match="increase"):
        RNNConfig(vocab_size=100, tie_weights=False, adaptive_cutoffs=(50, 10))
    with pytest.raises(ValueError, match="batch, time"):
        RNNLM(RNNConfig(vocab_size=10, d_embed=4, d_hidden=4))(torch.tensor([1, 2, 3]))


def _stream(n=6000, vocab=40, seed=0):
    """Token t+1 = (t + 7) mod vocab, except after a 0 where it is 5: needs a little memory."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (n,), generator=g)
    for i in range(1, n):
        if i % 3:
            ids[i] = (ids[i - 1] + 7) % vocab
    return ids


@pytest.fixture
def one_thread():
    """Tiny matrices: extra threads only add overhead (and contention on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("adaptive", [False, True])
def test_few_steps_of_training_lower_the_loss_repeatably(adaptive, one_thread):
    ids = _stream()
    data = lambda: BPTTIterator(batchify(ids, 8), 20)  # noqa: E731
    results = []
    for _ in range(2):
        seed_everything(123)
        model = RNNLM(RNNConfig(vocab_size=40, d_embed=24, d_hidden=24, n_layers=1, dropout=0.0,
                                tie_weights=not adaptive, adaptive_cutoffs=(8, 20) if adaptive else None))
        before = evaluate(model, data(), loss_fn=model.loss_fn)[0]
        history = train(model, data(), None, TrainConfig(max_steps=100, lr=2e-2, progress=False, log_every=20),
                        device="cpu", loss_fn=model.loss_fn)
        after = evaluate(model, data(), loss_fn=model.loss_fn)[0]
        assert before > math.log(40) - 0.3
        assert after < before - 1.0
        results.append(history.train[-1]["loss"])
    assert results[0] == results[1]  # same seed, same run, bit for bit on CPU


def test_checkpoint_round_trip_rebuilds_the_model(tmp_path):
    seed_everything(0)
    for cfg in [RNNConfig(vocab_size=30, d_embed=8, d_hidden=8, n_layers=1),
                RNNConfig(vocab_size=30, cell="gru", d_embed=8, d_hidden=16, tie_weights=False,
                          adaptive_cutoffs=(5, 15))]:
        model = RNNLM(cfg).eval()
        save_checkpoint(model, tmp_path / cfg.cell)
        loaded = load_checkpoint(tmp_path / cfg.cell).eval()
        assert isinstance(loaded, RNNLM) and loaded.config == cfg
        x = torch.randint(0, 30, (2, 5))
        torch.testing.assert_close(loaded(x)[0], model(x)[0])
        if cfg.tie_weights:
            assert loaded.head.linear.weight is loaded.embed.weight


def test_rnn_lm_names_ids_outside_its_vocabulary():
    model = RNNLM(RNNConfig(10, "lstm", d_embed=8, d_hidden=8, n_layers=1))
    with pytest.raises(ValueError, match=r"RNNLM got token id 10, outside the model's vocabulary \(0 to 9\)"):
        model(torch.full((1, 4), 10))
    with pytest.raises(ValueError, match="token id -1"):
        model(torch.tensor([[1, -1]]))
    with pytest.raises(TypeError, match=r"integer token ids \(torch.long\); got dtype torch.float32"):
        model(torch.zeros(1, 4))
