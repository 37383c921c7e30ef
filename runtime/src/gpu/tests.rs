use super::*;

fn gpu(index: u32, name: &str) -> GpuInfo {
    GpuInfo {
        index,
        uuid: format!("GPU-{index}"),
        name: name.into(),
        memory_total_bytes: 16 << 30,
        memory_used_bytes: 1 << 30,
        utilization_percent: 40,
    }
}

fn space(s: &str) -> SpaceId {
    SpaceId::parse(s).unwrap()
}

fn want(count: u32, model: Option<&str>) -> GpuRequest {
    GpuRequest {
        count,
        model: model.map(Into::into),
    }
}

fn uuids(gpus: &[GpuInfo]) -> Vec<&str> {
    gpus.iter().map(|g| g.uuid.as_str()).collect()
}

#[test]
fn a_space_gets_exactly_the_gpus_it_asks_for_and_never_shares_one() {
    let mut a = GpuAllocator::new(vec![
        gpu(0, "Tesla T4"),
        gpu(1, "Tesla T4"),
        gpu(2, "Tesla T4"),
    ]);
    let first = a.allocate(&space("a/one"), &want(2, None)).unwrap();
    assert_eq!(uuids(&first), ["GPU-0", "GPU-1"]);
    let second = a.allocate(&space("b/two"), &want(1, None)).unwrap();
    assert_eq!(uuids(&second), ["GPU-2"]);
    let refused = a.allocate(&space("c/three"), &want(1, None)).unwrap_err();
    assert!(refused.reason.contains("0 free"), "{refused}");
    assert!(refused.reason.contains("a/one") && refused.reason.contains("b/two"));
}

#[test]
fn the_flavor_model_selects_gpus_by_name() {
    let mut a = GpuAllocator::new(vec![gpu(0, "Tesla T4"), gpu(1, "NVIDIA A100-SXM4-80GB")]);
    let got = a.allocate(&space("a/x"), &want(1, Some("a100"))).unwrap();
    assert_eq!(uuids(&got), ["GPU-1"]);
    let refused = a.allocate(&space("b/y"), &want(1, Some("L4"))).unwrap_err();
    assert!(
        refused.reason.contains("only 0 such") && refused.reason.contains("Tesla T4"),
        "{refused}"
    );
}

#[test]
fn a_refused_space_waits_in_a_visible_queue_until_gpus_are_released() {
    let mut a = GpuAllocator::new(vec![gpu(0, "Tesla T4")]);
    a.allocate(&space("a/one"), &want(1, None)).unwrap();
    assert!(a.allocate(&space("b/two"), &want(1, None)).is_err());
    let queue = a.queue();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].space, space("b/two"));
    assert!(queue[0].reason.contains("waiting for a/one"));
    assert_eq!(a.release(&space("a/one")), ["GPU-0"]);
    let got = a.allocate(&space("b/two"), &want(1, None)).unwrap();
    assert_eq!(uuids(&got), ["GPU-0"]);
    assert!(a.queue().is_empty());
}

#[test]
fn no_gpu_machine_refuses_gpu_flavors_and_grants_cpu_ones() {
    let mut a = GpuAllocator::new(Vec::new());
    assert_eq!(a.allocate(&space("a/cpu"), &want(0, None)).unwrap(), []);
    let refused = a
        .allocate(&space("a/gpu"), &want(1, Some("T4")))
        .unwrap_err();
    assert!(refused.reason.contains("has no GPU"), "{refused}");
}

#[test]
fn asking_again_keeps_the_same_gpus() {
    let mut a = GpuAllocator::new(vec![gpu(0, "Tesla T4"), gpu(1, "Tesla T4")]);
    let first = a.allocate(&space("a/x"), &want(1, None)).unwrap();
    let again = a.allocate(&space("a/x"), &want(1, None)).unwrap();
    assert_eq!(first, again);
    assert_eq!(a.held_by(&space("a/x")).len(), 1);
}

#[test]
fn adoption_rebuilds_allocations_and_refuses_double_holders() {
    let mut a = GpuAllocator::new(vec![gpu(0, "Tesla T4"), gpu(1, "Tesla T4")]);
    a.adopt(&space("a/x"), &["GPU-1".into()]).unwrap();
    assert_eq!(a.holder("GPU-1"), Some(&space("a/x")));
    assert!(a.adopt(&space("b/y"), &["GPU-1".into()]).is_err());
    let got = a.allocate(&space("b/y"), &want(1, None)).unwrap();
    assert_eq!(uuids(&got), ["GPU-0"]);
}

#[test]
fn nvml_absent_means_zero_gpus_not_an_error() {
    // On machines with the driver this lists real GPUs; either way it must
    // not fail.
    let probe = NvmlProbe::new();
    let inventory = probe.inventory();
    if probe.unavailable.is_some() {
        assert!(inventory.is_empty());
    }
}

#[test]
fn metrics_label_each_gpu_with_its_holder() {
    let registry = prometheus::Registry::new();
    let metrics = GpuMetrics::register(&registry).unwrap();
    let mut a = GpuAllocator::new(vec![gpu(0, "Tesla T4"), gpu(1, "Tesla T4")]);
    a.allocate(&space("a/x"), &want(1, None)).unwrap();
    metrics.update(&a);
    let families = registry.gather();
    let util = families
        .iter()
        .find(|f| f.name() == "spaceport_gpu_utilization_ratio")
        .unwrap();
    let spaces: Vec<String> = util
        .get_metric()
        .iter()
        .map(|m| {
            m.get_label()
                .iter()
                .find(|l| l.name() == "space")
                .unwrap()
                .value()
                .to_owned()
        })
        .collect();
    assert!(spaces.contains(&"a/x".to_owned()) && spaces.contains(&String::new()));
}
