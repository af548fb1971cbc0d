//! Replays the VGG16 graph reader's fuzz seeds and every input a fuzz run found a bug with
//! (`fuzz/seeds/vgg16_graph/`, `fuzz/regressions/vgg16_graph/`) through the fuzz target's own
//! code, on stable Rust: each must return (an error is fine), none may panic.

#[path = "../../fuzz/src/trainer_targets.rs"]
mod targets;

#[path = "../../fuzz/src/replay.rs"]
mod replay;

#[test]
fn vgg16_graph() {
    replay::replay("vgg16_graph", targets::vgg16_graph);
}
