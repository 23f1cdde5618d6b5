//! reverie's developer tools, kept out of the operator image and the kubectl plugin: the
//! synthetic corpus generator and its scorer ([`synth`]), the adversarial corpus ([`hostile`]),
//! synthetic memories and proposals for the benchmarks ([`memories`]), sessions rendered in
//! the other transcript formats ([`formats`]),
//! a before/after corpus with known lesson effects ([`effect`]),
//! the scorer against an analyst's truth of a real corpus ([`truth`]), and the `reverie-dev`
//! commands that use them ([`commands`]). The benchmarks and tests use the same generators.

pub mod commands;
pub mod effect;
pub mod formats;
pub mod hostile;
pub mod memories;
pub mod synth;
pub mod truth;
