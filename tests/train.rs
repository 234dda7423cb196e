//! The training example runs as part of the tests: every pass and the update on the GPU, and
//! the network learns (loss falls, accuracy on unseen images well above chance).

#[path = "../examples/train.rs"]
mod train;

#[test]
fn the_training_example_learns_the_bars() {
    let t = train::run().expect("the training example runs");
    let (first, last) = (t.losses[0], *t.losses.last().unwrap());
    assert!(
        first.is_finite() && last.is_finite(),
        "losses {:?}",
        t.losses
    );
    assert!(last < 0.25 * first, "loss fell only from {first} to {last}");
    assert!(
        *t.accuracies.last().unwrap() >= 0.9,
        "training accuracy {:?}",
        t.accuracies
    );
    assert!(
        t.test_accuracy >= 0.9,
        "accuracy on unseen images {} (chance 0.5)",
        t.test_accuracy
    );
}
