//! An EventBridge subscriber: a rule on the gate's events into an SQS queue.

use super::*;

/// A subscriber to the gate's events, as a pipeline would have one: an EventBridge rule
/// on the default bus matching `"source": ["launch-gate"]`, with an SQS queue as its
/// target.
pub struct Subscriber {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    /// Every event received so far.
    pub received: Vec<Value>,
}

impl Subscriber {
    /// The rule and its queue, in the world's emulator.
    pub async fn start(sdk: &SdkConfig) -> Self {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let events = aws_sdk_eventbridge::Client::new(sdk);
        let queue_url = sqs
            .create_queue()
            .queue_name("launch-gate-events")
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_owned();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes()
            .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
            .clone();
        // The README's rule.
        events
            .put_rule()
            .name("launch-gate-to-pipeline")
            .event_pattern(r#"{"source": ["launch-gate"]}"#)
            .send()
            .await
            .unwrap();
        events
            .put_targets()
            .rule("launch-gate-to-pipeline")
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("pipeline")
                    .arn(arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        Self {
            sqs,
            queue_url,
            received: Vec::new(),
        }
    }

    /// Receives what has arrived, and returns every event received so far.
    pub async fn events(&mut self) -> &[Value] {
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            if out.messages().is_empty() {
                break;
            }
            for m in out.messages() {
                self.received
                    .push(serde_json::from_str(m.body().unwrap()).unwrap());
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        &self.received
    }

    /// The details of the events of `detail_type` received so far.
    pub async fn details(&mut self, detail_type: &str) -> Vec<Value> {
        self.events()
            .await
            .iter()
            .filter(|e| e["detail-type"] == detail_type)
            .map(|e| e["detail"].clone())
            .collect()
    }
}
