//! Pins the compile errors users see when `#[tenant_scoped]` or `#[global_table]` is misused.
#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass_*.rs");
    t.compile_fail("tests/ui/fail_*.rs");
}
