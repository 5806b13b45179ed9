//! Against the tansu broker scripts/setup.sh starts on loopback.

mod common;

use std::time::{Duration, Instant};

use berth_kafka::{read_all, KafkaError, Publisher};
use common::{broker, kafka_sh, topic, BrokerLock, StartOnDrop, TIMEOUT};

fn payloads(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

#[test]
fn futures_are_send() {
    fn send<T: Send>(_: T) {}
    let bootstrap = vec!["127.0.0.1:1".to_owned()];
    send(Publisher::connect(&bootstrap, "t", TIMEOUT));
    send(read_all(&bootstrap, "t", TIMEOUT));
    fn publish_is_send(p: &Publisher) {
        send(p.publish(&[]));
    }
    let _ = publish_is_send;
}

#[tokio::test]
async fn publish_and_read_back() {
    let _lock = BrokerLock::shared();
    let bootstrap = broker();
    let topic = topic("roundtrip");
    let publisher = Publisher::connect(&bootstrap, &topic, TIMEOUT).await.unwrap();
    assert_eq!(publisher.topic(), topic);
    assert_eq!(read_all(&bootstrap, &topic, TIMEOUT).await.unwrap(), Vec::<Vec<u8>>::new());

    let mut first = payloads(&[r#"{"state":"installing"}"#, ""]);
    first.push(vec![0, 159, 255, 10]);
    publisher.publish(&first).await.unwrap();
    publisher.publish(&[]).await.unwrap();
    let second = payloads(&[r#"{"state":"installed"}"#]);
    publisher.publish(&second).await.unwrap();

    let mut expected = first.clone();
    expected.extend(second);
    assert_eq!(read_all(&bootstrap, &topic, TIMEOUT).await.unwrap(), expected);

    // A second publisher on the same topic appends; the topic is not created twice.
    let again = Publisher::connect(&bootstrap, &topic, TIMEOUT).await.unwrap();
    again.publish(&payloads(&["third"])).await.unwrap();
    expected.push(b"third".to_vec());
    assert_eq!(read_all(&bootstrap, &topic, TIMEOUT).await.unwrap(), expected);
}

#[tokio::test]
async fn many_records_read_back_in_order() {
    let _lock = BrokerLock::shared();
    let bootstrap = broker();
    let topic = topic("many");
    let publisher = Publisher::connect(&bootstrap, &topic, TIMEOUT).await.unwrap();
    let mut expected = Vec::new();
    for batch in 0..20 {
        let items: Vec<Vec<u8>> =
            (0..50).map(|i| format!("record {batch}-{i} {}", "x".repeat(100)).into_bytes()).collect();
        publisher.publish(&items).await.unwrap();
        expected.extend(items);
    }
    let read = read_all(&bootstrap, &topic, TIMEOUT).await.unwrap();
    assert_eq!(read.len(), expected.len());
    for (i, (r, e)) in read.iter().zip(&expected).enumerate() {
        assert_eq!(String::from_utf8_lossy(r), String::from_utf8_lossy(e), "record {i}");
    }
}

#[tokio::test]
async fn missing_topic_reads_empty() {
    let _lock = BrokerLock::shared();
    let bootstrap = broker();
    assert!(read_all(&bootstrap, &topic("never-created"), TIMEOUT).await.unwrap().is_empty());
}

#[tokio::test]
async fn publisher_survives_a_broker_restart() {
    let _lock = BrokerLock::exclusive();
    let bootstrap = broker();
    let topic = topic("restart");
    let publisher = Publisher::connect(&bootstrap, &topic, TIMEOUT).await.unwrap();
    publisher.publish(&payloads(&["before"])).await.unwrap();
    assert_eq!(read_all(&bootstrap, &topic, TIMEOUT).await.unwrap(), payloads(&["before"]));

    let _restart = StartOnDrop;
    kafka_sh("restart");
    assert_eq!(kafka_sh("addr"), bootstrap[0], "the broker keeps its address across a restart");
    // In-memory storage: the restarted broker has lost the topic and its records.
    assert!(read_all(&bootstrap, &topic, TIMEOUT).await.unwrap().is_empty());

    // The same publisher reconnects and creates the topic again.
    publisher.publish(&payloads(&["after"])).await.unwrap();
    publisher.publish(&payloads(&["after 2"])).await.unwrap();
    assert_eq!(read_all(&bootstrap, &topic, TIMEOUT).await.unwrap(), payloads(&["after", "after 2"]));

    // So does a fresh one.
    kafka_sh("restart");
    let fresh = Publisher::connect(&bootstrap, &topic, TIMEOUT).await.unwrap();
    fresh.publish(&payloads(&["fresh"])).await.unwrap();
    assert_eq!(read_all(&bootstrap, &topic, TIMEOUT).await.unwrap(), payloads(&["fresh"]));
}

#[tokio::test]
async fn publish_while_stopped_fails_within_the_timeout() {
    let _lock = BrokerLock::exclusive();
    let bootstrap = broker();
    let topic = topic("stopped");
    let timeout = Duration::from_secs(2);
    let publisher = Publisher::connect(&bootstrap, &topic, timeout).await.unwrap();
    publisher.publish(&payloads(&["up"])).await.unwrap();

    let _start = StartOnDrop;
    kafka_sh("stop");
    let started = Instant::now();
    let err = publisher.publish(&payloads(&["down"])).await.unwrap_err();
    let took = started.elapsed();
    assert!(took <= timeout + Duration::from_millis(500), "publish took {took:?}, timeout {timeout:?}");
    assert!(matches!(err, KafkaError::Unreachable { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("unreachable"), "{message}");
    assert!(message.contains(&bootstrap[0]) && message.contains(&topic), "{message}");

    let started = Instant::now();
    let err = Publisher::connect(&bootstrap, &topic, timeout).await.unwrap_err();
    assert!(started.elapsed() <= timeout + Duration::from_millis(500));
    assert!(matches!(err, KafkaError::Unreachable { .. }), "{err:?}");
    let err = read_all(&bootstrap, &topic, timeout).await.unwrap_err();
    assert!(matches!(err, KafkaError::Unreachable { .. }), "{err:?}");

    kafka_sh("start");
    publisher.publish(&payloads(&["up again"])).await.unwrap();
    assert_eq!(read_all(&bootstrap, &topic, timeout).await.unwrap(), payloads(&["up again"]));

    // A broker that comes back while a publish waits for it is used.
    kafka_sh("stop");
    let starter = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(500));
        kafka_sh("start");
    });
    publisher.publish(&payloads(&["back in time"])).await.unwrap();
    starter.join().unwrap();
    assert_eq!(read_all(&bootstrap, &topic, timeout).await.unwrap(), payloads(&["back in time"]));
}

#[tokio::test]
async fn no_bootstrap_broker() {
    let err = Publisher::connect(&[], "t", TIMEOUT).await.unwrap_err();
    assert!(matches!(err, KafkaError::NoBroker { .. }), "{err:?}");
}
