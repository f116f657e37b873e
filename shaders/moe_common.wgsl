// moe_common.wgsl — what every MoE routing kernel shares: the sizes, the "no value" marker.
//
// Layouts (row-major, f32 unless noted), identical to concord-core's `model::moe` matrices:
//   gate_out = logits T×E | probs T×E | lse T
//   choice (u32) T×K expert ids in rank order, choice_w T×K their weights
//   route_f  = combine T×E | dispatch T×E | dropped E
//   route_u (u32) = slot T×E (NONE: not processed) | token_of_slot E×cbuf (NONE: empty slot)
// Tie-breaking, as on the CPU: among equal values the lower index wins — the lower expert when
// a token ranks experts, the lower token when an expert ranks tokens; capacity slots go to
// first choices before second choices, each in token order.

struct MoeParams {
    t: u32,        // tokens
    d: u32,        // gate input width
    e: u32,        // experts
    k: u32,        // choices per token (1 for expert choice: the argmax for f_i)
    h: u32,        // token width for dispatch / combine
    cbuf: u32,     // slots per expert buffer
    capacity: u32, // expert capacity (NONE: unlimited); expert choice: tokens per expert
    renorm: u32,   // 1: weights divided by the sum of the kept probabilities
}

const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> mp: MoeParams;
