// TEMPORARY STUB (the real one is being written): lets the other tests compile.
pub struct BoltServer;
impl BoltServer {
    pub async fn start() -> Self {
        panic!("stub")
    }
    pub fn url(&self) -> String {
        String::new()
    }
    pub fn user(&self) -> &str {
        ""
    }
    pub fn password(&self) -> &str {
        ""
    }
    pub fn database(&self) -> &str {
        ""
    }
    pub async fn stop(&mut self) {}
    pub async fn restart(&mut self) {}
}
