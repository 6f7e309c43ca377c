# Appended to reference/lab2/transformer.py (its definitions win), this is a submission that
# computes every graded function another correct way. It must score full marks.
# ruff: noqa: F821  (the names it builds on are defined by the reference it is appended to)


class LayerNorm(LayerNorm):
    """rsqrt of the biased variance from torch.var."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.var(dim=-1, unbiased=False, keepdim=True)
        normalized = (x - x.mean(dim=-1, keepdim=True)) * torch.rsqrt(variance + self.eps)
        return self.hook_normalized(normalized * self.w + self.b)


class Embed(Embed):
    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(tokens, self.W_E)


class PosEmbed(PosEmbed):
    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, pos = tokens.shape
        return self.W_pos[torch.arange(pos, device=tokens.device)][None].repeat(batch, 1, 1)


class Attention(Attention):
    """Batched matmuls with heads before positions, a -1e5 mask, a hand-written softmax."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        heads_first = x[:, None]                                    # (batch, 1, pos, d_model)
        q = heads_first @ self.W_Q + self.b_Q[:, None]              # (batch, head, pos, d_head)
        k = heads_first @ self.W_K + self.b_K[:, None]
        v = heads_first @ self.W_V + self.b_V[:, None]
        q = self.hook_q(q.transpose(1, 2)).transpose(1, 2)
        k = self.hook_k(k.transpose(1, 2)).transpose(1, 2)
        v = self.hook_v(v.transpose(1, 2)).transpose(1, 2)
        scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
        pos = x.shape[1]
        allowed = torch.tril(torch.ones(pos, pos, dtype=torch.bool, device=x.device))
        scores = self.hook_attn_scores(torch.where(allowed, scores, -1e5))
        exponentials = (scores - scores.amax(dim=-1, keepdim=True)).exp()
        pattern = self.hook_pattern(exponentials / exponentials.sum(dim=-1, keepdim=True))
        z = self.hook_z((pattern @ v).transpose(1, 2))              # (batch, pos, head, d_head)
        return (z.transpose(1, 2) @ self.W_O).sum(dim=1) + self.b_O


class MLP(MLP):
    """GELU written out with erf."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.hook_pre(torch.einsum("bpd,dm->bpm", x, self.W_in) + self.b_in)
        post = self.hook_post(0.5 * pre * (1 + torch.erf(pre / math.sqrt(2))))
        return torch.einsum("bpm,md->bpd", post, self.W_out) + self.b_out


class Unembed(Unembed):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bpd,dv->bpv", x, self.W_U) + self.b_U


def next_token_log_probs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    predicting = logits[:, :-1]
    chosen = predicting.gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
    return chosen - predicting.logsumexp(dim=-1)


def stationary_distribution(transition: torch.Tensor) -> torch.Tensor:
    """Every row of transition^(2^64) is the stationary distribution (rows renormalised at
    each squaring, or rounding grows as (1 + 1e-16)^(2^64))."""
    power = transition
    for _ in range(64):
        power = power @ power
        power = power / power.sum(dim=1, keepdim=True)
    return power[0]


def entropy_rate(transition: torch.Tensor) -> torch.Tensor:
    safe = torch.where(transition > 0, transition, torch.ones_like(transition))
    return -(stationary_distribution(transition)[:, None] * transition * safe.log()).sum()


def train(model: nn.Module, batches, *, steps: int, lr: float = 1e-3, weight_decay: float = 0.0,
          generator: torch.Generator, device="cpu", progress: bool = True) -> list[float]:
    device = torch.device(device)
    model = model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    optimizer.zero_grad()
    losses = []
    for _ in tqdm(range(steps), disable=not progress, mininterval=1):
        tokens = batches(generator).to(device)
        loss = next_token_loss(model(tokens), tokens)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)
        losses.append(float(loss.detach()))
    return losses


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    descending = logits.sort(dim=-1, descending=True).values
    threshold = descending[:, min(k, logits.shape[-1]) - 1, None]
    return torch.where(logits >= threshold, logits, torch.full_like(logits, float("-inf")))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Ascending sort: drop tokens whose probability, with every less likely token's, stays
    within 1 - p (so the mass above them already reaches p)."""
    ascending, order = logits.sort(dim=-1)
    below_and_self = ascending.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = below_and_self <= 1 - p
    drop_sorted[:, -1] = False
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_next_token(logits: torch.Tensor, generator: torch.Generator, temperature: float = 1.0,
                      top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Gumbel-max: the argmax of logits plus Gumbel noise is a draw from their softmax."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    uniform = torch.rand(logits.shape, generator=generator, dtype=torch.float64)
    gumbel = -(-uniform.clamp_min(1e-300).log()).log()
    return (logits.to(torch.float64) + gumbel).argmax(dim=-1)


@torch.no_grad()
def generate(model: nn.Module, prompt: torch.Tensor, max_new_tokens: int,
             generator: torch.Generator, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None) -> torch.Tensor:
    batch, start = prompt.shape
    tokens = torch.empty(batch, start + max_new_tokens, dtype=prompt.dtype, device=prompt.device)
    tokens[:, :start] = prompt
    for end in range(start, start + max_new_tokens):
        window = tokens[:, max(0, end - model.config.n_ctx):end]
        tokens[:, end] = sample_next_token(model(window)[:, -1], generator, temperature=temperature,
                                           top_k=top_k, top_p=top_p)
    return tokens
