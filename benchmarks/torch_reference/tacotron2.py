"""Tacotron 2 in PyTorch: a compact transcription of the reference, the benchmarks' baseline.

Sources (NVIDIA/tacotron2):
  model.py          LocationLayer, Attention, Prenet, Postnet, Encoder, Decoder, Tacotron2
  layers.py         ConvNorm, LinearNorm (xavier-uniform Conv1d / Linear)
  hparams.py        the LJSpeech hyperparameters (`Tacotron2Params` defaults; n_symbols 148)
  loss_function.py  Tacotron2Loss: mel MSE before + after the postnet, gate BCE-with-logits
  train.py          the step: loss, backward, clip_grad_norm_(1.0), Adam(1e-3, wd 1e-6)

Layouts are the reference's: ids `[batch, tokens]`, mels `[batch, n_mels, frames]`.

Differences from the stored reference, all cost-neutral:
- The dropout rates the reference hard-codes (encoder, prenet, postnet: 0.5) are constructor
  arguments with those defaults, so tfspeech's config builds the same model.
- `inference` decodes one utterance (batch 1) as the reference does; `Decoder.inference`'s
  warning print at the step limit is left out.
- `+=` in-place updates are written out of place.
"""

import dataclasses
import math

import torch
from torch import nn
from torch.nn import functional as F


@dataclasses.dataclass(frozen=True)
class Tacotron2Params:
  """Reference hyperparameters (hparams.py names; defaults = the LJSpeech recipe)."""
  n_symbols: int = 148
  symbols_embedding_dim: int = 512
  encoder_kernel_size: int = 5
  encoder_n_convolutions: int = 3
  encoder_embedding_dim: int = 512
  n_mel_channels: int = 80
  n_frames_per_step: int = 1
  decoder_rnn_dim: int = 1024
  prenet_dim: int = 256
  max_decoder_steps: int = 1000
  gate_threshold: float = 0.5
  p_attention_dropout: float = 0.1
  p_decoder_dropout: float = 0.1
  attention_rnn_dim: int = 1024
  attention_dim: int = 128
  attention_location_n_filters: int = 32
  attention_location_kernel_size: int = 31
  postnet_embedding_dim: int = 512
  postnet_kernel_size: int = 5
  postnet_n_convolutions: int = 5
  encoder_dropout: float = 0.5
  prenet_dropout: float = 0.5
  postnet_dropout: float = 0.5


def params_from_tfspeech(config) -> Tacotron2Params:
  """The `Tacotron2Params` of a tfspeech `Tacotron2Config`: same fields, same model."""
  names = {f.name for f in dataclasses.fields(Tacotron2Params)}
  return Tacotron2Params(**{name: getattr(config, name) for name in names})


def count_parameters(module: nn.Module) -> int:
  """Every parameter (BatchNorm running statistics are buffers, not parameters)."""
  return sum(p.numel() for p in module.parameters())


# --- layers.py ------------------------------------------------------------------------------


class LinearNorm(nn.Module):
  def __init__(self, in_dim, out_dim, bias=True, w_init_gain="linear"):
    super().__init__()
    self.linear_layer = nn.Linear(in_dim, out_dim, bias=bias)
    nn.init.xavier_uniform_(self.linear_layer.weight, gain=nn.init.calculate_gain(w_init_gain))

  def forward(self, x):
    return self.linear_layer(x)


class ConvNorm(nn.Module):
  def __init__(self, in_channels, out_channels, kernel_size=1, stride=1, padding=None,
               dilation=1, bias=True, w_init_gain="linear"):
    super().__init__()
    if padding is None:
      padding = int(dilation * (kernel_size - 1) / 2)
    self.conv = nn.Conv1d(in_channels, out_channels, kernel_size=kernel_size, stride=stride,
                          padding=padding, dilation=dilation, bias=bias)
    nn.init.xavier_uniform_(self.conv.weight, gain=nn.init.calculate_gain(w_init_gain))

  def forward(self, signal):
    return self.conv(signal)


def get_mask_from_lengths(lengths):
  ids = torch.arange(0, int(torch.max(lengths).item()), device=lengths.device)
  return ids < lengths.unsqueeze(1)


# --- model.py -------------------------------------------------------------------------------


class LocationLayer(nn.Module):
  def __init__(self, n_filters, kernel_size, attention_dim):
    super().__init__()
    self.location_conv = ConvNorm(2, n_filters, kernel_size=kernel_size,
                                  padding=(kernel_size - 1) // 2, bias=False)
    self.location_dense = LinearNorm(n_filters, attention_dim, bias=False, w_init_gain="tanh")

  def forward(self, attention_weights_cat):
    return self.location_dense(self.location_conv(attention_weights_cat).transpose(1, 2))


class Attention(nn.Module):
  def __init__(self, attention_rnn_dim, embedding_dim, attention_dim, n_filters, kernel_size):
    super().__init__()
    self.query_layer = LinearNorm(attention_rnn_dim, attention_dim, bias=False,
                                  w_init_gain="tanh")
    self.memory_layer = LinearNorm(embedding_dim, attention_dim, bias=False, w_init_gain="tanh")
    self.v = LinearNorm(attention_dim, 1, bias=False)
    self.location_layer = LocationLayer(n_filters, kernel_size, attention_dim)
    self.score_mask_value = -float("inf")

  def forward(self, query, memory, processed_memory, attention_weights_cat, mask):
    energies = self.v(torch.tanh(self.query_layer(query.unsqueeze(1))
                                 + self.location_layer(attention_weights_cat)
                                 + processed_memory)).squeeze(-1)
    if mask is not None:
      energies = energies.masked_fill(mask, self.score_mask_value)
    weights = F.softmax(energies, dim=1)
    return torch.bmm(weights.unsqueeze(1), memory).squeeze(1), weights


class Prenet(nn.Module):
  def __init__(self, in_dim, sizes, dropout=0.5):
    super().__init__()
    in_sizes = [in_dim] + sizes[:-1]
    self.layers = nn.ModuleList([LinearNorm(i, o, bias=False) for i, o in zip(in_sizes, sizes)])
    self.dropout = dropout

  def forward(self, x):
    for linear in self.layers:
      x = F.dropout(F.relu(linear(x)), p=self.dropout, training=True)  # always on
    return x


class Postnet(nn.Module):
  def __init__(self, hp: Tacotron2Params):
    super().__init__()
    k = hp.postnet_kernel_size
    dims = ([hp.n_mel_channels] + [hp.postnet_embedding_dim] * (hp.postnet_n_convolutions - 1)
            + [hp.n_mel_channels])
    last = hp.postnet_n_convolutions - 1
    self.convolutions = nn.ModuleList([
        nn.Sequential(ConvNorm(dims[i], dims[i + 1], kernel_size=k, padding=(k - 1) // 2,
                               w_init_gain="tanh" if i < last else "linear"),
                      nn.BatchNorm1d(dims[i + 1]))
        for i in range(hp.postnet_n_convolutions)])
    self.dropout = hp.postnet_dropout

  def forward(self, x):
    for conv in self.convolutions[:-1]:
      x = F.dropout(torch.tanh(conv(x)), self.dropout, self.training)
    return F.dropout(self.convolutions[-1](x), self.dropout, self.training)


class Encoder(nn.Module):
  def __init__(self, hp: Tacotron2Params):
    super().__init__()
    k = hp.encoder_kernel_size
    dims = [hp.symbols_embedding_dim] + [hp.encoder_embedding_dim] * hp.encoder_n_convolutions
    self.convolutions = nn.ModuleList([
        nn.Sequential(ConvNorm(dims[i], dims[i + 1], kernel_size=k, padding=(k - 1) // 2,
                               w_init_gain="relu"),
                      nn.BatchNorm1d(dims[i + 1]))
        for i in range(hp.encoder_n_convolutions)])
    self.lstm = nn.LSTM(hp.encoder_embedding_dim, hp.encoder_embedding_dim // 2, 1,
                        batch_first=True, bidirectional=True)
    self.dropout = hp.encoder_dropout

  def forward(self, x, input_lengths):
    for conv in self.convolutions:
      x = F.dropout(F.relu(conv(x)), self.dropout, self.training)
    x = nn.utils.rnn.pack_padded_sequence(x.transpose(1, 2), input_lengths.cpu(),
                                          batch_first=True, enforce_sorted=False)
    outputs, _ = self.lstm(x)
    outputs, _ = nn.utils.rnn.pad_packed_sequence(outputs, batch_first=True)
    return outputs

  def inference(self, x):
    for conv in self.convolutions:
      x = F.dropout(F.relu(conv(x)), self.dropout, self.training)
    outputs, _ = self.lstm(x.transpose(1, 2))
    return outputs


class Decoder(nn.Module):
  def __init__(self, hp: Tacotron2Params):
    super().__init__()
    self.hp = hp
    enc = hp.encoder_embedding_dim
    self.prenet = Prenet(hp.n_mel_channels * hp.n_frames_per_step,
                         [hp.prenet_dim, hp.prenet_dim], hp.prenet_dropout)
    self.attention_rnn = nn.LSTMCell(hp.prenet_dim + enc, hp.attention_rnn_dim)
    self.attention_layer = Attention(hp.attention_rnn_dim, enc, hp.attention_dim,
                                     hp.attention_location_n_filters,
                                     hp.attention_location_kernel_size)
    self.decoder_rnn = nn.LSTMCell(hp.attention_rnn_dim + enc, hp.decoder_rnn_dim, 1)
    self.linear_projection = LinearNorm(hp.decoder_rnn_dim + enc,
                                        hp.n_mel_channels * hp.n_frames_per_step)
    self.gate_layer = LinearNorm(hp.decoder_rnn_dim + enc, 1, bias=True, w_init_gain="sigmoid")

  def initialize_decoder_states(self, memory, mask):
    b, t = memory.size(0), memory.size(1)
    new = memory.new_zeros
    hp = self.hp
    self.attention_hidden = new(b, hp.attention_rnn_dim)
    self.attention_cell = new(b, hp.attention_rnn_dim)
    self.decoder_hidden = new(b, hp.decoder_rnn_dim)
    self.decoder_cell = new(b, hp.decoder_rnn_dim)
    self.attention_weights = new(b, t)
    self.attention_weights_cum = new(b, t)
    self.attention_context = new(b, hp.encoder_embedding_dim)
    self.memory = memory
    self.processed_memory = self.attention_layer.memory_layer(memory)
    self.mask = mask

  def decode(self, decoder_input):
    hp = self.hp
    cell_input = torch.cat((decoder_input, self.attention_context), -1)
    self.attention_hidden, self.attention_cell = self.attention_rnn(
        cell_input, (self.attention_hidden, self.attention_cell))
    self.attention_hidden = F.dropout(self.attention_hidden, hp.p_attention_dropout,
                                      self.training)
    weights_cat = torch.cat((self.attention_weights.unsqueeze(1),
                             self.attention_weights_cum.unsqueeze(1)), dim=1)
    self.attention_context, self.attention_weights = self.attention_layer(
        self.attention_hidden, self.memory, self.processed_memory, weights_cat, self.mask)
    self.attention_weights_cum = self.attention_weights_cum + self.attention_weights
    decoder_input = torch.cat((self.attention_hidden, self.attention_context), -1)
    self.decoder_hidden, self.decoder_cell = self.decoder_rnn(
        decoder_input, (self.decoder_hidden, self.decoder_cell))
    self.decoder_hidden = F.dropout(self.decoder_hidden, hp.p_decoder_dropout, self.training)
    hidden_context = torch.cat((self.decoder_hidden, self.attention_context), dim=1)
    return (self.linear_projection(hidden_context), self.gate_layer(hidden_context),
            self.attention_weights)

  def forward(self, memory, decoder_inputs, memory_lengths):
    """Teacher forcing: mels `[b, n_mels, frames]` → (mels, gate `[b, frames]`, alignments)."""
    go = memory.new_zeros(1, memory.size(0), self.hp.n_mel_channels)
    decoder_inputs = torch.cat((go, decoder_inputs.permute(2, 0, 1)), dim=0)
    decoder_inputs = self.prenet(decoder_inputs)
    self.initialize_decoder_states(memory, mask=~get_mask_from_lengths(memory_lengths))
    mels, gates, alignments = [], [], []
    while len(mels) < decoder_inputs.size(0) - 1:
      mel, gate, weights = self.decode(decoder_inputs[len(mels)])
      mels.append(mel)
      gates.append(gate.squeeze(1))
      alignments.append(weights)
    return (torch.stack(mels, 2), torch.stack(gates, 1), torch.stack(alignments, 1))

  def inference(self, memory):
    decoder_input = memory.new_zeros(memory.size(0), self.hp.n_mel_channels)
    self.initialize_decoder_states(memory, mask=None)
    mels, gates, alignments = [], [], []
    while True:
      mel, gate, weights = self.decode(self.prenet(decoder_input))
      mels.append(mel)
      gates.append(gate.squeeze(1))
      alignments.append(weights)
      if torch.sigmoid(gate.data) > self.hp.gate_threshold:
        break
      if len(mels) == self.hp.max_decoder_steps:
        break
      decoder_input = mel
    return (torch.stack(mels, 2), torch.stack(gates, 1), torch.stack(alignments, 1))


class Tacotron2(nn.Module):
  def __init__(self, hp: Tacotron2Params):
    super().__init__()
    self.hp = hp
    self.embedding = nn.Embedding(hp.n_symbols, hp.symbols_embedding_dim)
    std = math.sqrt(2.0 / (hp.n_symbols + hp.symbols_embedding_dim))
    val = math.sqrt(3.0) * std
    self.embedding.weight.data.uniform_(-val, val)
    self.encoder = Encoder(hp)
    self.decoder = Decoder(hp)
    self.postnet = Postnet(hp)

  def forward(self, text, text_lengths, mels, mel_lengths):
    """Teacher forcing; returns [mel, mel_postnet, gate, alignments] masked as the reference."""
    memory = self.encoder(self.embedding(text).transpose(1, 2), text_lengths)
    mel, gate, alignments = self.decoder(memory, mels, memory_lengths=text_lengths)
    mel_postnet = mel + self.postnet(mel)
    pad = ~get_mask_from_lengths(mel_lengths)
    mel = mel.masked_fill(pad.unsqueeze(1), 0.0)
    mel_postnet = mel_postnet.masked_fill(pad.unsqueeze(1), 0.0)
    gate = gate.masked_fill(pad, 1e3)
    return [mel, mel_postnet, gate, alignments]

  def inference(self, text):
    memory = self.encoder.inference(self.embedding(text).transpose(1, 2))
    mel, gate, alignments = self.decoder.inference(memory)
    return [mel, mel + self.postnet(mel), gate, alignments]


def loss(outputs, mel_target, gate_target, mel_lengths):
  """loss_function.py: masked mel MSE before + after the postnet, gate BCE-with-logits."""
  mel, mel_postnet, gate, _ = outputs
  count = mel_lengths.sum() * mel.size(1)
  mel_loss = (F.mse_loss(mel, mel_target, reduction="sum")
              + F.mse_loss(mel_postnet, mel_target, reduction="sum")) / count
  return mel_loss + F.binary_cross_entropy_with_logits(gate.reshape(-1), gate_target.reshape(-1))


class TrainStep:
  """train.py's step: forward, loss, backward, clip_grad_norm_(1.0), Adam(lr, wd 1e-6)."""

  def __init__(self, model: Tacotron2, learning_rate=1e-3, weight_decay=1e-6, clip_norm=1.0):
    self.model = model
    self.clip_norm = clip_norm
    self.optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate,
                                      weight_decay=weight_decay)

  def __call__(self, text, text_lengths, mels, mel_lengths):
    """mels `[b, n_mels, frames]`; the gate target is 1 from each last frame on."""
    self.model.train()
    frames = torch.arange(mels.size(2)).unsqueeze(0)
    gate_target = (frames >= (mel_lengths - 1).unsqueeze(1)).float()
    self.optimizer.zero_grad()
    value = loss(self.model(text, text_lengths, mels, mel_lengths), mels, gate_target,
                 mel_lengths)
    value.backward()
    torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_norm)
    self.optimizer.step()
    return float(value)


# --- weights from tfspeech ------------------------------------------------------------------


def _set(parameter, value):
  with torch.no_grad():
    parameter.copy_(torch.as_tensor(value.numpy() if hasattr(value, "numpy") else value))


def _conv(torch_conv, keras_conv):
  _set(torch_conv.weight, keras_conv.kernel.numpy().transpose(2, 1, 0))
  if torch_conv.bias is not None:
    _set(torch_conv.bias, keras_conv.bias)


def _linear(torch_linear, dense):
  _set(torch_linear.weight, dense.kernel.numpy().T)
  if torch_linear.bias is not None:
    _set(torch_linear.bias, dense.bias)


def _norm(torch_norm, keras_norm):
  _set(torch_norm.weight, keras_norm.gamma)
  _set(torch_norm.bias, keras_norm.beta)
  _set(torch_norm.running_mean, keras_norm.moving_mean)
  _set(torch_norm.running_var, keras_norm.moving_variance)


def _lstm(torch_lstm, cell, suffix=""):
  _set(getattr(torch_lstm, "weight_ih" + suffix), cell.kernel.numpy().T)
  _set(getattr(torch_lstm, "weight_hh" + suffix), cell.recurrent_kernel.numpy().T)
  _set(getattr(torch_lstm, "bias_ih" + suffix), cell.bias)
  _set(getattr(torch_lstm, "bias_hh" + suffix), cell.recurrent_bias)


def load_tfspeech_weights(model: Tacotron2, tf_model) -> Tacotron2:
  """Copies a tfspeech `Tacotron2`'s weights (and BatchNorm statistics) into `model`."""
  _set(model.embedding.weight, tf_model.embedding.embeddings)
  for (conv, norm), keras_conv, keras_norm in zip(model.encoder.convolutions,
                                                  tf_model.encoder.convs, tf_model.encoder.norms):
    _conv(conv.conv, keras_conv)
    _norm(norm, keras_norm)
  _lstm(model.encoder.lstm, tf_model.encoder.forward_cell, "_l0")
  _lstm(model.encoder.lstm, tf_model.encoder.backward_cell, "_l0_reverse")
  decoder = model.decoder
  for linear, dense in zip(decoder.prenet.layers, tf_model.prenet.layers_):
    _linear(linear.linear_layer, dense)
  _lstm(decoder.attention_rnn, tf_model.attention_rnn)
  _lstm(decoder.decoder_rnn, tf_model.decoder_rnn)
  attention, keras_attention = decoder.attention_layer, tf_model.attention
  _linear(attention.query_layer.linear_layer, keras_attention.query_layer)
  _linear(attention.memory_layer.linear_layer, keras_attention.memory_layer)
  _linear(attention.v.linear_layer, keras_attention.v)
  _conv(attention.location_layer.location_conv.conv, keras_attention.location_conv)
  _linear(attention.location_layer.location_dense.linear_layer, keras_attention.location_dense)
  _linear(decoder.linear_projection.linear_layer, tf_model.linear_projection)
  _linear(decoder.gate_layer.linear_layer, tf_model.gate_layer)
  for (conv, norm), keras_conv, keras_norm in zip(model.postnet.convolutions,
                                                  tf_model.postnet.convs, tf_model.postnet.norms):
    _conv(conv.conv, keras_conv)
    _norm(norm, keras_norm)
  return model
