mod common;
use rskafka::client::{ClientBuilder, partition::{OffsetAt, UnknownTopicHandling}};
#[tokio::test]
async fn debug() {
    let bootstrap = common::broker();
    let topic = common::topic("dbg");
    let p = berth_kafka::Publisher::connect(&bootstrap, &topic, common::TIMEOUT).await.unwrap();
    let c = ClientBuilder::new(bootstrap.clone()).build().await.unwrap();
    let pc = c.partition_client(topic.clone(), 0, UnknownTopicHandling::Error).await.unwrap();
    for b in 0..3 {
        let items: Vec<Vec<u8>> = (0..3).map(|i| format!("{b}-{i}").into_bytes()).collect();
        p.publish(&items).await.unwrap();
        println!("after batch {b}: earliest {} latest {}", pc.get_offset(OffsetAt::Earliest).await.unwrap(), pc.get_offset(OffsetAt::Latest).await.unwrap());
    }
    let mut off = 0;
    for _ in 0..5 {
        let (recs, hw) = pc.fetch_records(off, 1..1_000_000, 100).await.unwrap();
        println!("fetch {off}: hw {hw} offsets {:?}", recs.iter().map(|r| (r.offset, String::from_utf8_lossy(r.record.value.as_deref().unwrap()).into_owned())).collect::<Vec<_>>());
        if let Some(l) = recs.last() { off = l.offset + 1 } else { break }
    }
}
