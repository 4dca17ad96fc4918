//! The registration form of a transfer (《电子档案移交与接收登记表》) as filled in practice:
//! 交接工作名称, 内容描述, counts (cases, files, pages of digitised copies), data volume in GB with
//! three decimals, carrier numbers and type, the five checks each with its result and method (not
//! a pass count), the digest sheet per carrier with the algorithm named, and for each side the
//! person filling it in and the reviewer with dates, with room for seals. The sender's half is
//! filled when the volumes are built; the receiver's half from the signed receipt. XML for
//! machines, HTML to print, both beside the volumes.

use std::io;

use crate::db::transfers::{TransferRow, VolumeRow};
use crate::documents::html_escape as esc;
use crate::xml::Doc;

/// One of the five checks: result (`pass`, `fail`, `not_checked`, `manual`) and how.
pub struct Check {
    pub name: &'static str,
    pub result: String,
    pub method: String,
}

/// The receiver's half, from its receipt.
pub struct ReceiverHalf {
    pub receiver: String,
    pub received_at: String,
    pub accepted: usize,
    pub refused: usize,
    pub checks: Vec<Check>,
}

pub struct Form<'a> {
    pub transfer: &'a TransferRow,
    pub fonds_code: &'a str,
    pub receiver: &'a str,
    pub cases: usize,
    pub files: i64,
    pub digitised_pages: i64,
    pub bytes: u64,
    pub volumes: &'a [VolumeRow],
    pub carrier: &'a str,
    pub sender_checks: Vec<Check>,
    pub receiver_half: Option<ReceiverHalf>,
}

impl Form<'_> {
    fn title(&self) -> String {
        format!(
            "全宗 {} {} 年度电子档案移交（{}）",
            self.fonds_code, self.transfer.year, self.transfer.transfer_id
        )
    }

    pub fn xml(&self) -> io::Result<String> {
        let t = self.transfer;
        let mut d = Doc::in_memory()?;
        d.open("登记表", &[("xmlns", "urn:guidang:transfer:1")])?
            .text("交接工作名称", &self.title())?
            .text(
                "内容描述",
                &format!(
                    "政务服务办件电子档案 {} 件（含纸质原件数字化副本 {} 页）；BagIt 封装，ZIP 容器",
                    self.cases, self.digitised_pages
                ),
            )?
            .text("移交电子档案数量", &self.cases.to_string())?
            .text("文件数", &self.files.to_string())?
            .text("数字化副本页数", &self.digitised_pages.to_string())?
            .text("移交数据量", &format!("{:.3}", self.bytes as f64 / 1e9))?
            .text("载体起止顺序号", &format!("1-{}", self.volumes.len()))?
            .text("移交载体类型规格", self.carrier)?;
        d.open("移交方", &[("单位", self.fonds_code)])?;
        checks_xml(&mut d, &self.sender_checks)?;
        d.text("填表人", t.prepared_by_name.as_deref().unwrap_or(""))?
            .text("填表日期", &t.created_at)?
            .text("审核人", t.approved_by_name.as_deref().unwrap_or(""))?
            .text("审核日期", t.approved_at.as_deref().unwrap_or(""))?
            .text("单位印章", "")?
            .close("移交方")?;
        match &self.receiver_half {
            Some(r) => {
                d.open("接收方", &[("单位", r.receiver.as_str())])?;
                checks_xml(&mut d, &r.checks)?;
                d.text("接收数量", &r.accepted.to_string())?
                    .text("拒收数量", &r.refused.to_string())?
                    .text("接收日期", &r.received_at)?
                    .text("填表人", "")?
                    .text("审核人", "")?
                    .text("单位印章", "")?
                    .close("接收方")?;
            }
            None => {
                d.empty("接收方", &[("单位", self.receiver)])?;
            }
        }
        d.open("摘要表", &[])?;
        for v in self.volumes {
            let (n, size) = (v.n.to_string(), format!("{:.3}", v.size as f64 / 1e9));
            d.open(
                "载体",
                &[
                    ("顺序号", n.as_str()),
                    ("名称", v.name.as_str()),
                    ("GB", &size),
                ],
            )?
            .text_with(
                "摘要",
                &[("算法", "SHA-256"), ("对象", "tagmanifest-sha256.txt")],
                &v.tagmanifest_sha256,
            )?
            .text_with(
                "摘要",
                &[("算法", "SM3"), ("对象", "tagmanifest-sha256.txt")],
                &v.tagmanifest_sm3,
            )?
            .text("内容", &format!("{} 件", v.cases))?
            .close("载体")?;
        }
        d.close("摘要表")?.close("登记表")?;
        Ok(d.into_string())
    }

    /// A printable page: one table for the form, one per side's checks, the digest sheet.
    pub fn html(&self) -> String {
        let t = self.transfer;
        let row = |k: &str, v: &str| {
            format!(
                "<tr><th>{}</th><td colspan=\"3\">{}</td></tr>\n",
                esc(k),
                esc(v)
            )
        };
        let mut h = String::from(
            "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
             <title>电子档案移交与接收登记表</title><style>\
             body{font-family:\"Noto Serif CJK SC\",\"SimSun\",serif;margin:2cm}\
             table{border-collapse:collapse;width:100%;margin-bottom:1em}\
             th,td{border:1px solid #000;padding:4px 6px;text-align:left;vertical-align:top}\
             th{width:22%;background:#f4f4f4}h1{text-align:center;font-size:20pt}\
             .seal{height:3cm}code{font-size:9pt;word-break:break-all}\
             </style></head><body>\n<h1>电子档案移交与接收登记表</h1>\n<table>\n",
        );
        h += &row("交接工作名称", &self.title());
        h += &row(
            "内容描述",
            &format!(
                "政务服务办件电子档案 {} 件（含纸质原件数字化副本 {} 页）；BagIt 封装，ZIP 容器",
                self.cases, self.digitised_pages
            ),
        );
        h += &row(
            "移交电子档案数量",
            &format!("{} 件，{} 个文件", self.cases, self.files),
        );
        h += &row("移交数据量", &format!("{:.3} GB", self.bytes as f64 / 1e9));
        h += &row("载体起止顺序号", &format!("1-{}", self.volumes.len()));
        h += &row("移交载体类型、规格", self.carrier);
        h += "</table>\n";
        let side = |title: &str, unit: &str, checks: &[Check], people: [(&str, &str); 4]| {
            let mut s = format!(
                "<table>\n<tr><th colspan=\"4\">{}：{}</th></tr>\n<tr><th>检验项目</th><th>结果</th><th colspan=\"2\">方法</th></tr>\n",
                esc(title),
                esc(unit)
            );
            for c in checks {
                s += &format!(
                    "<tr><td>{}</td><td>{}</td><td colspan=\"2\">{}</td></tr>\n",
                    esc(c.name),
                    esc(&result_zh(&c.result)),
                    esc(&c.method)
                );
            }
            s += &format!(
                "<tr><th>{}</th><td>{}</td><th>{}</th><td>{}</td></tr>\n<tr><th>{}</th><td>{}</td><th>{}</th><td>{}</td></tr>\n",
                esc(people[0].0),
                esc(people[0].1),
                esc(people[1].0),
                esc(people[1].1),
                esc(people[2].0),
                esc(people[2].1),
                esc(people[3].0),
                esc(people[3].1)
            );
            s += "<tr><th>单位（印章）</th><td colspan=\"3\" class=\"seal\"></td></tr>\n</table>\n";
            s
        };
        h += &side(
            "移交单位",
            self.fonds_code,
            &self.sender_checks,
            [
                ("填表人", t.prepared_by_name.as_deref().unwrap_or("")),
                ("日期", &t.created_at),
                ("审核人", t.approved_by_name.as_deref().unwrap_or("")),
                ("日期", t.approved_at.as_deref().unwrap_or("")),
            ],
        );
        match &self.receiver_half {
            Some(r) => {
                h += &side(
                    "接收单位",
                    &r.receiver,
                    &r.checks,
                    [
                        ("填表人", ""),
                        ("接收日期", &r.received_at),
                        ("审核人", ""),
                        ("接收/拒收", &format!("{} / {}", r.accepted, r.refused)),
                    ],
                );
            }
            None => {
                h += &side(
                    "接收单位",
                    self.receiver,
                    &[],
                    [("填表人", ""), ("日期", ""), ("审核人", ""), ("日期", "")],
                );
            }
        }
        h += "<table>\n<tr><th colspan=\"4\">摘要表</th></tr>\n<tr><th>载体顺序号</th><th>内容</th><th>摘要（算法）</th><th>实际大小</th></tr>\n";
        for v in self.volumes {
            h += &format!(
                "<tr><td>{} {}</td><td>{} 件</td><td>SHA-256: <code>{}</code><br>SM3: <code>{}</code></td><td>{:.3} GB</td></tr>\n",
                v.n,
                esc(&v.name),
                v.cases,
                v.tagmanifest_sha256,
                v.tagmanifest_sm3,
                v.size as f64 / 1e9
            );
        }
        h += "</table>\n</body></html>\n";
        h
    }
}

fn checks_xml(d: &mut Doc<Vec<u8>>, checks: &[Check]) -> io::Result<()> {
    d.open("检验", &[])?;
    for c in checks {
        d.open("项目", &[("名称", c.name), ("结果", c.result.as_str())])?
            .text("方法", &c.method)?
            .close("项目")?;
    }
    d.close("检验")?;
    Ok(())
}

fn result_zh(r: &str) -> String {
    match r {
        "pass" => "合格".into(),
        "fail" => "不合格".into(),
        "manual" => "人工检验".into(),
        "not_checked" => "未检验".into(),
        "not_configured" => "未配置".into(),
        other => other.into(),
    }
}
